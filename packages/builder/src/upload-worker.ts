// UploadWorker (§4.5): uploads the newest READY build of each provider diskimage to the provider
// — only from the builder that holds the build's files, one upload per (build, provider) at a
// time cluster-wide (the upload lock) — and records the ImageUpload. A failed upload leaves a
// `failed` record; the next cycle tries again with a new upload number. `nodepool image-upload`
// (a `request-upload/<provider>` znode) forces an upload of the newest build even when one exists.
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { isCloudProvider, type Config, type FakeProvider, type OpenStackProvider, type ProviderDiskImage } from '@nodepool-ts/core/config';
import { newImageUpload, type ImageBuild, type ImageUpload } from '@nodepool-ts/core/model';
import { META_IMAGE, META_PROVIDER } from '@nodepool-ts/core/provider';
import { pyFormat } from '@nodepool-ts/launcher';
import { BuilderError } from './errors.js';
import { DibImageFile, buildBaseName } from './dib.js';
import { STATUS_IDLE, STATUS_PAUSED, STATUS_UPLOADING } from './metrics.js';
import { Worker, type BuilderContext, type WorkerTiming } from './worker.js';

/** Providers that take uploads (every cloud driver; static hosts have no images). */
const execFileAsync = promisify(execFile);

export type ImageProvider = OpenStackProvider | FakeProvider;

export function imageProviders(config: Config): ImageProvider[] {
  const out: ImageProvider[] = [];
  for (const p of config.providers.values()) if (isCloudProvider(p)) out.push(p);
  return out;
}

/** Glance properties of an upload (§4.5) plus the provider/image names leaked-image cleanup needs. */
export function uploadMetadata(pdi: ProviderDiskImage, provider: string, buildId: string, uploadId: string, format: string): Record<string, string> {
  return {
    ...pdi.meta,
    nodepool_build_id: buildId,
    nodepool_upload_id: uploadId,
    disk_format: format,
    [META_PROVIDER]: provider,
    [META_IMAGE]: pdi.name,
  };
}

export class UploadWorker extends Worker {
  private readonly abort = new AbortController();
  /** image -> provider -> STATUS_IDLE / UPLOADING / PAUSED (builder stats) */
  readonly imageStatus = new Map<string, Map<string, number>>();
  private uploads = 0;

  /** True while this worker uploads. */
  get uploading(): boolean {
    return this.uploads > 0;
  }

  private setStatus(image: string, provider: string, status: number): void {
    const m = this.imageStatus.get(image) ?? new Map<string, number>();
    this.imageStatus.set(image, m);
    m.set(provider, status);
  }

  constructor(index: number, ctx: BuilderContext, timing: WorkerTiming) {
    super(`UploadWorker.${index}`, ctx, timing);
    ctx.stopSignal.addEventListener('abort', () => this.abort.abort(), { once: true });
  }

  protected async cycle(): Promise<void> {
    const config = await this.ctx.reloadConfig();
    const providers = imageProviders(config);
    if (this.uploads === 0) {
      this.imageStatus.clear();
      for (const provider of providers) for (const pdi of provider.diskimages) this.setStatus(pdi.name, provider.name, pdi.pause ? STATUS_PAUSED : STATUS_IDLE);
    }
    for (const provider of providers) {
      for (const pdi of provider.diskimages) {
        if (!this.canWork) return;
        let uploaded = false;
        try {
          uploaded = await this.checkProviderImageUpload(config, provider, pdi);
        } catch (err) {
          this.log.error({ err }, `Error uploading image ${pdi.name} to provider ${provider.name}: ${(err as Error).message}`);
        }
        // After an upload attempt the config may be stale: end the cycle, reload next time (Nodepool).
        if (uploaded) return;
      }
    }
  }

  /** True when an upload was attempted. */
  private async checkProviderImageUpload(config: Config, provider: ImageProvider, pdi: ProviderDiskImage): Promise<boolean> {
    if (pdi.pause) return false;
    const zk = this.ctx.zk;
    const imagesDir = config.imagesDir;
    if (imagesDir === null) return false;
    const [build] = await zk.getMostRecentBuilds(1, pdi.name, 'ready');
    if (build === undefined || build.id === null) return false;
    const base = buildBaseName(pdi.name, build.id);
    const localImages = await DibImageFile.fromImageId(imagesDir, base);
    if (localImages.length === 0) return false;
    const forced = await zk.hasUploadRequest(pdi.name, provider.name);
    if (!forced && (await zk.getMostRecentBuildImageUploads(1, pdi.name, build.id, provider.name, 'ready')).length > 0) return false;
    if (!build.formats.includes(provider.imageFormat)) {
      if (forced) {
        this.log.warn(`Upload of ${base} to ${provider.name} requested, but the build has no ${provider.imageFormat} file; dropping the request`);
        await zk.removeUploadRequest(pdi.name, provider.name);
      }
      return false;
    }
    const lock = zk.uploadLock(pdi.name, build.id, provider.name);
    if (!(await lock.acquire({ blocking: false }))) return false;
    try {
      const stillForced = forced && (await zk.hasUploadRequest(pdi.name, provider.name));
      if (!stillForced && (await zk.getMostRecentBuildImageUploads(1, pdi.name, build.id, provider.name, 'ready')).length > 0) return false;
      const current = await zk.getBuild(pdi.name, build.id);
      if (current === null || current.state === 'deleting') return false;

      const record = newImageUpload({ state: 'uploading', username: build.username });
      const uploadId = await zk.storeImageUpload(pdi.name, build.id, provider.name, record);
      this.uploads++;
      this.setStatus(pdi.name, provider.name, STATUS_UPLOADING);
      let final: ImageUpload;
      try {
        final = await this.upload(config, provider, pdi, build, uploadId, localImages);
      } finally {
        this.uploads--;
        this.setStatus(pdi.name, provider.name, STATUS_IDLE);
      }
      await zk.storeImageUpload(pdi.name, build.id, provider.name, final, uploadId);
      if (stillForced && final.state === 'ready') await zk.removeUploadRequest(pdi.name, provider.name);
      return true;
    } finally {
      await lock.release();
    }
  }

  /**
   * Nodepool's post-upload-hook: `<hook> <provider> <external image id> <local file>` after the
   * upload, before the image is used; exit 0 accepts it. A rejected (or unrunnable) hook's output
   * is logged and the image is deleted from the cloud again.
   */
  private async postUploadHook(provider: ImageProvider, manager: { deleteImage(id: string): Promise<void> }, imageId: string,
    filename: string): Promise<boolean> {
    const hook = provider.postUploadHook ?? '';
    this.log.info(`Running post upload hook ${hook} ${provider.name} ${imageId} ${filename}`);
    try {
      const { stdout, stderr } = await execFileAsync(hook, [provider.name, imageId, filename], {
        signal: this.abort.signal, maxBuffer: 16 * 1024 * 1024,
      });
      this.log.info(`Post upload hook success with exit code 0\nstdout:\n${stdout}\nstderr:\n${stderr}`);
      return true;
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string; code?: number | string };
      this.log.error(typeof e.code === 'number'
        ? `Post upload hook failed with exit code ${e.code}\nstdout:\n${e.stdout ?? ''}\nstderr:\n${e.stderr ?? ''}`
        : `Post upload hook ${hook} could not run: ${e.message}`);
      try {
        await manager.deleteImage(imageId);
      } catch (delErr) {
        this.log.error(`Unable to delete image "${imageId}" from ${provider.name}: ${(delErr as Error).message}`);
      }
      return false;
    }
  }

  private async upload(config: Config, provider: ImageProvider, pdi: ProviderDiskImage, build: ImageBuild,
    uploadId: string, images: DibImageFile[]): Promise<ImageUpload> {
    const buildId = build.id ?? '';
    const start = Date.now();
    const timestamp = Math.trunc(start / 1000);
    const failed = newImageUpload({ state: 'failed', username: build.username });
    const imagesDir = config.imagesDir ?? '';
    const image = images.find((i) => i.extension === provider.imageFormat);
    let bytes = 0;
    try {
      if (image === undefined) {
        throw new BuilderError('ENOIMAGEFILE',
          `Unable to find image file of type ${provider.imageFormat} for id ${buildId} to upload`, { image: pdi.name, buildId });
      }
      const filename = await image.toPath(imagesDir, true);
      bytes = (await stat(filename)).size;
      const externalName = pyFormat(provider.imageNameFormat, { image_name: pdi.name, timestamp: String(timestamp) });
      this.log.info(`Uploading DIB image build ${buildId} from ${filename} to ${provider.name}`);
      const manager = await this.ctx.providerManager(provider);
      if (manager === null) throw new BuilderError('ENOPROVIDER', `provider ${provider.name} takes no image uploads`);
      let lastPct = -1;
      const timeout = AbortSignal.timeout(provider.imageUploadTimeout * 1000);
      const info = await manager.uploadImage({
        name: externalName,
        file: filename,
        format: provider.imageFormat,
        metadata: uploadMetadata(pdi, provider.name, buildId, uploadId, provider.imageFormat),
        ...(image.md5 !== null ? { md5: image.md5 } : {}),
        ...(image.sha256 !== null ? { sha256: image.sha256 } : {}),
        signal: AbortSignal.any([this.abort.signal, timeout]),
        // progress in the builder log at most every 10 % (Glance uploads take minutes)
        onProgress: (sent, total) => {
          const pct = total > 0 ? Math.floor((sent / total) * 10) * 10 : 0;
          if (pct <= lastPct) return;
          lastPct = pct;
          this.log.info({ provider: provider.name, build: buildId, bytes: sent, total },
            `Uploading ${buildBaseName(pdi.name, buildId)} to ${provider.name}: ${pct}% (${sent} of ${total} bytes)`);
        },
      }).catch((err: unknown) => {
        if (!timeout.aborted || this.abort.signal.aborted) throw err;
        throw new BuilderError('ETIMEOUT', `upload of ${buildBaseName(pdi.name, buildId)} to ${provider.name} timed out after `
          + `${provider.imageUploadTimeout} s (image-upload-timeout)`, { image: pdi.name, buildId });
      });
      if (provider.postUploadHook !== null && !(await this.postUploadHook(provider, manager, info.id, filename))) {
        throw new BuilderError('EHOOK', `post-upload-hook ${provider.postUploadHook} rejected image ${info.id} in ${provider.name}`,
          { image: pdi.name, buildId });
      }
      const durationMs = Date.now() - start;
      this.log.info(`Image build ${buildBaseName(pdi.name, buildId)} in ${provider.name} is ready`);
      this.ctx.metrics.onUploadFinished({ image: pdi.name, buildId, provider: provider.name, uploadId, state: 'ready', durationMs, bytes });
      return newImageUpload({
        state: 'ready', external_id: info.id, external_name: externalName, format: provider.imageFormat,
        username: build.username,
      });
    } catch (err) {
      this.log.error({ err }, `Failed to upload image ${pdi.name} to provider ${provider.name}: ${(err as Error).message}`);
      this.ctx.metrics.onUploadFinished({
        image: pdi.name, buildId, provider: provider.name, uploadId, state: 'failed', durationMs: Date.now() - start, bytes,
      });
      return failed;
    }
  }
}
