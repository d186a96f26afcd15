// CleanupWorker (§4.6): keeps the 2 newest READY builds of each image and the 2 newest READY
// uploads per provider; deletes older, failed and `deleting` builds (local files, then the
// znode once no uploads remain — only the builder that owns the files does that), uploads of
// providers that no longer list the image, uploads marked by `image-delete`, stale `uploading`
// records, and cloud images that carry our metadata but are unknown to ZooKeeper.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '@nodepool-ts/core/config';
import { type ImageBuild, type ImageUpload } from '@nodepool-ts/core/model';
import { META_PROVIDER, NotFoundError, type ImageInfo } from '@nodepool-ts/core/provider';
import { DibImageFile, buildBaseName, removeBuildFiles } from './dib.js';
import { imageProviders, type ImageProvider } from './upload-worker.js';
import { Worker, type BuilderContext, type WorkerTiming } from './worker.js';

/** image → provider → the (at most 2) newest READY uploads among READY builds */
type RecencyTable = Map<string, Map<string, { buildId: string; uploadId: string; time: number }[]>>;

/** Which builds of an image to keep: the 2 newest READY ones by state_time. Pure, for tests. */
export function buildsToKeep(builds: readonly ImageBuild[]): Set<string> {
  return new Set(
    builds.filter((b) => b.state === 'ready' && b.id !== null)
      .sort((a, b) => b.state_time - a.state_time)
      .slice(0, 2)
      .map((b) => b.id as string),
  );
}

export class CleanupWorker extends Worker {
  private rtable: RecencyTable = new Map();

  constructor(index: number, ctx: BuilderContext, timing: WorkerTiming) {
    super(`CleanupWorker.${index}`, ctx, timing);
  }

  protected async cycle(): Promise<void> {
    const config = await this.ctx.reloadConfig();
    const providers = imageProviders(config);
    const images = await this.ctx.zk.getImageNames();
    await this.buildRecencyTable(images);
    for (const image of images) {
      if (!this.canWork) return;
      try {
        await this.cleanupImage(config, providers, image);
      } catch (err) {
        this.log.error({ err }, `Exception cleaning up image ${image}: ${(err as Error).message}`);
      }
    }
    for (const provider of providers) {
      if (!this.canWork) return;
      try {
        await this.cleanupLeakedImages(provider);
      } catch (err) {
        this.log.error({ err }, `Exception cleaning up leaked images in ${provider.name}: ${(err as Error).message}`);
      }
    }
  }

  private async buildRecencyTable(images: string[]): Promise<void> {
    const zk = this.ctx.zk;
    const table: RecencyTable = new Map();
    for (const image of images) {
      const perProvider = new Map<string, { buildId: string; uploadId: string; time: number }[]>();
      table.set(image, perProvider);
      for (const build of await zk.getBuilds(image, ['ready'])) {
        if (build.id === null) continue;
        for (const provider of await zk.getBuildProviders(image, build.id)) {
          const list = perProvider.get(provider) ?? [];
          perProvider.set(provider, list);
          for (const u of await zk.getMostRecentBuildImageUploads(2, image, build.id, provider, 'ready')) {
            if (u.id !== null) list.push({ buildId: build.id, uploadId: u.id, time: u.state_time });
          }
        }
      }
      for (const [p, list] of perProvider) perProvider.set(p, list.sort((a, b) => b.time - a.time).slice(0, 2));
    }
    this.rtable = table;
  }

  private isRecentUpload(image: string, provider: string, buildId: string, uploadId: string): boolean {
    return (this.rtable.get(image)?.get(provider) ?? []).some((e) => e.buildId === buildId && e.uploadId === uploadId);
  }

  private async cleanupImage(config: Config, providers: ImageProvider[], image: string): Promise<void> {
    const zk = this.ctx.zk;
    const imagesDir = config.imagesDir ?? '';
    const all = await zk.getBuilds(image);
    const keep = buildsToKeep(all);
    const local = new Set<string>();
    for (const b of all) {
      if (b.id === null) continue;
      // ours: built here (by builder id; delete-after-upload may have removed every file) or with files here
      if ((b.builder_id !== null && b.builder_id === this.ctx.builderId)
        || (await DibImageFile.fromImageId(imagesDir, buildBaseName(image, b.id))).length > 0) local.add(b.id);
    }
    const diskimage = config.diskimages.get(image);
    // not ours and never was: another builder's business
    if (diskimage === undefined && local.size === 0) return;
    if (diskimage === undefined || diskimage.formats.length === 0) for (const id of local) keep.delete(id);

    for (const build of all) {
      if (build.id === null) continue;
      const buildId = build.id;
      // Uploads for providers that no longer list the image go whatever the build's state.
      for (const provider of providers) {
        try {
          await this.cleanupObsoleteProviderUploads(provider, image, buildId);
          if (keep.has(buildId)) await this.cleanupCurrentProviderUploads(provider.name, image, buildId);
        } catch (err) {
          this.log.error({ err }, `Exception cleaning up uploads of build ${buildId} of image ${image} in provider ${provider.name}: ${(err as Error).message}`);
        }
      }
      if (build.state !== 'deleting') {
        if (keep.has(buildId)) {
          if (build.state === 'ready' && local.has(buildId) && diskimage?.deleteAfterUpload === true) {
            await this.pruneLocalFormats(imagesDir, providers, image, build, diskimage.keepFormats);
          }
          continue;
        }
        if (await this.inProgressBuild(build, image)) continue;
      }
      for (const provider of providers) {
        try {
          await this.cleanupProvider(provider.name, image, buildId);
        } catch (err) {
          this.log.error({ err }, `Exception cleaning up build ${buildId} of image ${image} in provider ${provider.name}: ${(err as Error).message}`);
        }
      }
      let uploadsExist = false;
      for (const p of await zk.getBuildProviders(image, buildId)) {
        if ((await zk.getUploadIds(image, buildId, p)).length > 0) {
          uploadsExist = true;
          break;
        }
      }
      if (uploadsExist) continue;
      if (build.state !== 'deleting') {
        const lock = zk.buildLock(image, buildId);
        if (!(await lock.acquire({ blocking: false }))) continue;
        try {
          const fresh = await zk.getBuild(image, buildId);
          if (fresh === null) continue;
          fresh.state = 'deleting';
          fresh.state_time = Date.now() / 1000;
          await zk.storeBuild(image, fresh, buildId);
        } finally {
          await lock.release();
        }
      }
      if (await this.deleteLocalBuild(imagesDir, image, build)) {
        if (!(await zk.deleteBuild(image, buildId))) {
          this.log.error(`Unable to delete build ${buildBaseName(image, buildId)} because uploads still remain.`);
        } else {
          this.log.info(`Deleted build ${buildBaseName(image, buildId)}`);
        }
      }
    }
  }

  /** Uploads of a build that are not among the provider's 2 newest ready ones. */
  private async cleanupProvider(provider: string, image: string, buildId: string): Promise<void> {
    for (const upload of await this.ctx.zk.getImageUploads(image, buildId, provider)) {
      if (upload.id !== null && this.isRecentUpload(image, provider, buildId, upload.id)) continue;
      await this.deleteUpload(upload);
    }
  }

  private async cleanupObsoleteProviderUploads(provider: ImageProvider, image: string, buildId: string): Promise<void> {
    if (provider.diskimages.some((d) => d.name === image)) return;
    for (const upload of await this.ctx.zk.getImageUploads(image, buildId, provider.name)) await this.deleteUpload(upload);
  }

  /**
   * Cruft of a kept build: `uploading` records nobody holds the lock for (an uploader died before
   * it could write `failed`) lose their record; `deleting` ones are deleted for real.
   */
  private async cleanupCurrentProviderUploads(provider: string, image: string, buildId: string): Promise<void> {
    const zk = this.ctx.zk;
    for (const upload of await zk.getImageUploads(image, buildId, provider, ['uploading', 'deleting'])) {
      if (upload.state === 'uploading' && !(await this.inProgressUpload(upload))) {
        // the lock was free: make sure the record did not move on meanwhile
        const again = upload.id === null ? null : await zk.getImageUpload(image, buildId, provider, upload.id);
        if (again?.state !== 'uploading' || upload.id === null) continue;
        this.log.info(`Removing failed upload record: ${image}-${buildId} ${provider} upload ${upload.id}`);
        await zk.deleteUpload(image, buildId, provider, upload.id);
      } else if (upload.state === 'deleting') {
        this.log.info(`Removing deleted upload and record: ${image}-${buildId} ${provider} upload ${upload.id ?? '?'}`);
        await this.deleteUpload(upload);
      }
    }
  }

  private async inProgressUpload(upload: ImageUpload): Promise<boolean> {
    if (upload.state !== 'uploading') return false;
    if (upload.image === null || upload.build_id === null || upload.provider === null) return false;
    const lock = this.ctx.zk.uploadLock(upload.image, upload.build_id, upload.provider);
    if (!(await lock.acquire({ blocking: false }))) return true;
    await lock.release();
    return false;
  }

  private async inProgressBuild(build: ImageBuild, image: string): Promise<boolean> {
    if (build.state !== 'building' || build.id === null) return false;
    // ours, running here: its lock may be gone with a lost session, the build is not
    if (this.ctx.activeBuilds.has(buildBaseName(image, build.id))) return true;
    const lock = this.ctx.zk.imageBuildLock(image);
    if (!(await lock.acquire({ blocking: false }))) return true;
    try {
      // if the state moved on meanwhile, look again next cycle
      const b = await this.ctx.zk.getBuild(image, build.id);
      return b === null || b.state !== 'building';
    } finally {
      await lock.release();
    }
  }

  /**
   * Mark `deleting` (keeping what we know about the cloud image so a failed delete can be
   * retried — Nodepool blanks the other fields), delete the cloud image, then the record.
   */
  private async deleteUpload(upload: ImageUpload): Promise<void> {
    const zk = this.ctx.zk;
    const { image, build_id: buildId, provider, id } = upload;
    if (image === null || buildId === null || provider === null || id === null) return;
    let deleting = upload.state === 'deleting';
    if (!deleting && !(await this.inProgressUpload(upload))) {
      await zk.storeImageUpload(image, buildId, provider, { ...upload, state: 'deleting', state_time: Date.now() / 1000 }, id);
      deleting = true;
    }
    if (!deleting) return;
    const ref = upload.external_id ?? upload.external_name;
    if (ref !== null) {
      const config = this.ctx.config;
      const p = config.providers.get(provider);
      if (p === undefined || p.driver === 'static') return; // not ours to delete in the cloud
      const manager = await this.ctx.providerManager(p);
      if (manager === null) return;
      this.log.info(`Deleting image build ${buildBaseName(image, buildId)} from ${provider}`);
      try {
        await manager.deleteImage(ref);
      } catch (err) {
        if (!(err instanceof NotFoundError)) {
          this.log.error({ err }, `Unable to delete image ${ref} from ${provider}: ${(err as Error).message}`);
          return;
        }
      }
    }
    await zk.deleteUpload(image, buildId, provider, id);
  }

  /**
   * `delete-after-upload` (Nodepool 11.0): remove the local files (and checksums) of each format
   * every provider using the image has uploaded this build in, except `keep-formats`; a format a
   * provider still lacks a ready upload of stays for that upload.
   */
  private async pruneLocalFormats(imagesDir: string, providers: ImageProvider[], image: string, build: ImageBuild,
    keepFormats: string[]): Promise<void> {
    if (build.id === null || !this.ownsBuild(build)) return;
    const keep = new Set(keepFormats);
    for (const p of providers) {
      if (!p.diskimages.some((d) => d.name === image)) continue;
      if ((await this.ctx.zk.getMostRecentBuildImageUploads(1, image, build.id, p.name, 'ready')).length === 0) keep.add(p.imageFormat);
    }
    const base = buildBaseName(image, build.id);
    for (const f of await DibImageFile.fromImageId(imagesDir, base)) {
      if (f.extension === null || keep.has(f.extension)) continue;
      const path = join(imagesDir, `${base}.${f.extension}`);
      for (const p of [path, `${path}.md5`, `${path}.sha256`]) await rm(p, { force: true });
      this.log.info(`Removed ${path} of ${image}:${build.id}: uploaded to every provider (delete-after-upload)`);
    }
  }

  private ownsBuild(build: ImageBuild): boolean {
    return build.builder_id !== null ? build.builder_id === this.ctx.builderId : build.builder === this.ctx.hostname;
  }

  /** Remove this builder's files of a build; false when the build belongs to another builder. */
  private async deleteLocalBuild(imagesDir: string, image: string, build: ImageBuild): Promise<boolean> {
    if (!this.ownsBuild(build) || build.id === null) return false;
    const base = buildBaseName(image, build.id);
    const removed = await removeBuildFiles(imagesDir, base);
    if (removed.length > 0) this.log.info(`Doing cleanup for ${image}:${build.id}; removed ${removed.join(', ')}`);
    return true;
  }

  /**
   * Cloud images this provider uploaded (our metadata names it) that no upload record knows:
   * an uploader that died after the cloud accepted the image, a record removed by hand. The cloud
   * is listed BEFORE ZooKeeper is read, so an upload starting meanwhile already has its record.
   */
  private async cleanupLeakedImages(provider: ImageProvider): Promise<void> {
    const manager = await this.ctx.providerManager(provider);
    if (manager === null) return;
    const ours = (await manager.listImages()).filter((i: ImageInfo) => i.metadata[META_PROVIDER] === provider.name
      && i.metadata.nodepool_build_id !== undefined && i.metadata.nodepool_upload_id !== undefined);
    if (ours.length === 0) return;
    const known = new Set<string>();
    const zk = this.ctx.zk;
    for (const image of await zk.getImageNames()) {
      for (const buildId of await zk.getBuildIds(image)) {
        // ids from the listing (a record with unreadable data still claims its image)
        for (const uploadId of await zk.getUploadIds(image, buildId, provider.name)) known.add(`${buildId}/${uploadId}`);
        for (const u of await zk.getImageUploads(image, buildId, provider.name)) {
          if (u.external_id !== null) known.add(u.external_id);
        }
      }
    }
    for (const img of ours) {
      if (known.has(img.id) || known.has(`${img.metadata.nodepool_build_id}/${img.metadata.nodepool_upload_id}`)) continue;
      this.log.info(`Deleting leaked image ${img.name} (${img.id}) in ${provider.name}: no upload record for build ${img.metadata.nodepool_build_id} upload ${img.metadata.nodepool_upload_id}`);
      try {
        await manager.deleteImage(img.id);
      } catch (err) {
        if (!(err instanceof NotFoundError)) this.log.error({ err }, `Unable to delete leaked image ${img.id} from ${provider.name}: ${(err as Error).message}`);
      }
    }
  }
}
