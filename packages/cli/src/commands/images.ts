// Image commands: dib-image-list, image-list, image-status, image-build, image-pause,
// image-unpause, image-delete, dib-image-delete, alien-image-list, export-image-data,
// import-image-data.
import { readFile, writeFile } from 'node:fs/promises';
import { isCloudProvider } from '@nodepool-ts/core/config';
import { pythonJson } from '@nodepool-ts/core/model';
import { ImageDataError, type ZooKeeper } from '@nodepool-ts/core/zk';
import type { ImageInfo } from '@nodepool-ts/core/provider';
import { CliError } from '../errors.js';
import { importOptional } from '../plugin.js';
import type { CommandContext } from '../runtime.js';
import {
  DIB_IMAGE_COLUMNS, IMAGE_COLUMNS, IMAGE_STATUS_COLUMNS, dibImageList, imageAge, imageList, imageStatus, imageStatusCells,
} from '../status.js';
import { formatObjects, formatTable } from '../table.js';
import type { Cell, Column } from '../table.js';
import { startProviderManager } from './provider-manager.js';
import { bool, notice, printJson, str } from './common.js';
import type { Command } from './common.js';

/** A listing command: the rows as JSON, or the table of their cells (ages against now). */
function listingCommand<R, K extends string>(
  load: (zk: ZooKeeper) => Promise<R[]>, columns: readonly Column<K>[], cells: (row: R, now: number) => Readonly<Record<K, Cell>>,
): Command {
  return async (_args, ctx) => {
    const rows = await load(await ctx.zookeeper());
    if (ctx.json) printJson(ctx, rows);
    else {
      const now = ctx.now();
      ctx.out(formatObjects(columns, rows.map((r) => cells(r, now))));
    }
    return 0;
  };
}

export const dibImageListCommand = listingCommand(dibImageList, DIB_IMAGE_COLUMNS, (r, now) => ({ ...r, age: imageAge(r.age, now) }));
export const imageListCommand = listingCommand(imageList, IMAGE_COLUMNS, (r, now) => ({ ...r, age: imageAge(r.age, now) }));
export const imageStatusCommand = listingCommand(imageStatus, IMAGE_STATUS_COLUMNS, imageStatusCells);

// ---------------------------------------------------------------------------------------------
// image-pause, image-unpause

export const imagePauseCommand: Command = async (args, ctx) => {
  const image = str(args, 'image');
  const config = await ctx.loadConfig();
  const zk = await ctx.zookeeper();
  // a typo must not create an image: pausing needs the image in the config or in ZooKeeper
  if (!config.diskimages.has(image) && !(await zk.getImageNames()).includes(image)) {
    throw new CliError('ENOTCONFIGURED', `Image ${image} is neither a configured diskimage nor known to ZooKeeper`, 1, { image });
  }
  await zk.setImagePaused(image, true);
  if (ctx.json) printJson(ctx, { image, paused: true });
  return 0;
};

export const imageUnpauseCommand: Command = async (args, ctx) => {
  const image = str(args, 'image');
  await (await ctx.zookeeper()).setImagePaused(image, false);
  if (ctx.json) printJson(ctx, { image, paused: false });
  return 0;
};

// ---------------------------------------------------------------------------------------------
// image-build

/** What `image-build --wait` hands to the waiter. */
export interface ImageBuildWaitRequest {
  image: string;
  /** build ids that existed before the request, so the waiter can tell the new build apart */
  knownBuildIds: string[];
  /** float Unix seconds when the request was made */
  requestedAt: number;
}

/**
 * Hook for `image-build --wait` (owned by the builder side): a module
 * `packages/cli/src/commands/image-build-wait.ts` exporting
 * `waitForImageBuild: ImageBuildWaiter` that waits for the requested build to finish, prints
 * what it wants and returns the exit status (0 = build ready).
 */
export type ImageBuildWaiter = (zk: ZooKeeper, req: ImageBuildWaitRequest, ctx: CommandContext) => Promise<number>;

async function loadWaiter(): Promise<ImageBuildWaiter> {
  const mod = await importOptional('./commands/image-build-wait.js');
  const fn = mod?.waitForImageBuild;
  if (typeof fn !== 'function') {
    throw new CliError('EUNAVAILABLE', 'image-build --wait: not available in this build');
  }
  return fn as ImageBuildWaiter;
}

export const imageBuildCommand: Command = async (args, ctx) => {
  const image = str(args, 'image');
  const config = await ctx.loadConfig();
  const diskimage = config.diskimages.get(image);
  if (diskimage === undefined) {
    // only disk-image-builder images can be built, not snapshots
    throw new CliError('ENOTCONFIGURED', `Trying to build a non disk-image-builder image: ${image}`, 1, { image });
  }
  if (diskimage.pause) {
    throw new CliError('EPAUSED', `Skipping build request for image ${image}; paused`, 1, { image });
  }
  const wait = bool(args, 'wait');
  const waiter = wait ? await loadWaiter() : null; // fail before requesting anything
  const zk = await ctx.zookeeper();
  if (await zk.isImagePaused(image)) {
    // Nodepool queues the request; a builder takes it once the image is unpaused
    if (waiter) {
      throw new CliError('EPAUSED', `Image ${image} is paused (nodepool image-unpause ${image}); not waiting for a build`, 1, { image });
    }
    ctx.log('WARNING', 'nodepool.cmd.nodepoolcmd', `Image ${image} is paused: the build starts when it is unpaused`);
  }
  const knownBuildIds = waiter ? await zk.getBuildIds(image) : [];
  const requestedAt = ctx.now();
  await zk.submitBuildRequest(image);
  if (waiter) return waiter(zk, { image, knownBuildIds, requestedAt }, ctx);
  if (ctx.json) printJson(ctx, { image, requested: true });
  return 0;
};

// ---------------------------------------------------------------------------------------------
// image-delete, dib-image-delete

export const imageDeleteCommand: Command = async (args, ctx) => {
  const provider = str(args, 'provider');
  const image = str(args, 'image');
  const buildId = str(args, 'build_id');
  const uploadId = str(args, 'upload_id');
  const zk = await ctx.zookeeper();
  const upload = await zk.getImageUpload(image, buildId, provider, uploadId);
  if (upload === null) {
    notice(ctx, 'Image upload not found');
    return 0;
  }
  if (upload.state === 'uploading') {
    notice(ctx, 'Cannot delete because image upload in progress');
    return 0;
  }
  // Nodepool only marks the upload; the builder's cleanup deletes it from the cloud and ZK.
  upload.state = 'deleting';
  upload.state_time = ctx.now();
  await zk.storeImageUpload(image, buildId, provider, upload, uploadId);
  if (ctx.json) printJson(ctx, { image, build_id: buildId, provider, upload_id: uploadId, state: upload.state });
  return 0;
};

export const dibImageDeleteCommand: Command = async (args, ctx) => {
  const displayId = str(args, 'id');
  // `<image>-<build>`: image names may contain '-', build ids never do
  const cut = displayId.lastIndexOf('-');
  const zk = await ctx.zookeeper();
  const image = displayId.slice(0, Math.max(cut, 0));
  const buildId = displayId.slice(cut + 1);
  const build = cut > 0 && buildId !== '' ? await zk.getBuild(image, buildId) : null;
  if (build === null) {
    notice(ctx, `Build ${displayId} not found`);
    return 0;
  }
  if (build.state === 'building') {
    notice(ctx, 'Cannot delete a build in progress');
    return 0;
  }
  build.state = 'deleting';
  build.state_time = ctx.now();
  await zk.storeBuild(image, build, buildId);
  if (ctx.json) printJson(ctx, { id: displayId, image, build_id: buildId, state: build.state });
  return 0;
};

// ---------------------------------------------------------------------------------------------
// alien-image-list

export const ALIEN_COLUMNS = ['Provider', 'Name', 'Image ID'] as const;

/**
 * Cloud images tagged by a Nodepool builder (`nodepool_build_id` metadata) whose id is not the
 * external id of any READY upload in ZooKeeper. A provider whose images cannot be listed is
 * logged and skipped, as Nodepool does.
 */
export const alienImageListCommand: Command = async (args, ctx) => {
  const only = str(args, 'provider');
  const config = await ctx.loadConfig();
  const zk = await ctx.zookeeper();
  const rows: { provider: string; name: string; id: string }[] = [];
  for (const provider of config.providers.values()) {
    if (only && provider.name !== only) continue;
    let cloudImages: ImageInfo[] = [];
    try {
      if (isCloudProvider(provider)) {
        const manager = await startProviderManager(config, provider);
        try {
          cloudImages = (await manager.listImages()).filter((i) => 'nodepool_build_id' in i.metadata);
        } finally {
          await manager.stop();
        }
      }
    } catch (err) {
      ctx.log('WARNING', 'nodepool.cmd.nodepoolcmd',
        `Exception listing alien images for ${provider.name}: ${(err as Error).message}`);
    }
    const known = new Set<string>();
    const diskimages = isCloudProvider(provider) ? provider.diskimages : [];
    for (const di of diskimages) {
      for (const buildId of await zk.getBuildIds(di.name)) {
        for (const upload of await zk.getImageUploads(di.name, buildId, provider.name, ['ready'])) {
          if (upload.external_id !== null) known.add(upload.external_id);
        }
      }
    }
    for (const img of cloudImages) {
      if (!known.has(img.id)) rows.push({ provider: provider.name, name: img.name, id: img.id });
    }
  }
  if (ctx.json) printJson(ctx, rows);
  else ctx.out(formatTable(ALIEN_COLUMNS, rows.map((r): Cell[] => [r.provider, r.name, r.id])));
  return 0;
};

// ---------------------------------------------------------------------------------------------
// export-image-data, import-image-data

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Builds, uploads and pause flags to a file (Nodepool's format: JSON of znode path → data). */
export const exportImageDataCommand: Command = async (args, ctx) => {
  const path = str(args, 'path');
  const data = await (await ctx.zookeeper()).exportImageData();
  try {
    await writeFile(path, pythonJson(data), { mode: 0o600 });
  } catch (err) {
    throw new CliError('EIO', `Cannot write ${path}: ${reason(err)}`, 1, { path });
  }
  if (ctx.json) printJson(ctx, { path, znodes: Object.keys(data).length });
  return 0;
};

/** The file back into ZooKeeper; a file with one bad entry imports nothing. */
export const importImageDataCommand: Command = async (args, ctx) => {
  const path = str(args, 'path');
  let data: unknown;
  try {
    data = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new CliError(err instanceof SyntaxError ? 'EINVAL' : 'EIO', `Cannot read ${path}: ${reason(err)}`, 1, { path });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new CliError('EINVAL', `${path} is not an image data export (a JSON object of znode paths); nothing imported`, 1, { path });
  }
  let written: number;
  try {
    written = await (await ctx.zookeeper()).importImageData(data as Record<string, unknown>);
  } catch (err) {
    if (!(err instanceof ImageDataError)) throw err;
    throw new CliError('EINVAL', `${path}: ${err.message}; nothing imported`, 1, { path, znode: err.path });
  }
  if (ctx.json) printJson(ctx, { path, znodes: written });
  return 0;
};
