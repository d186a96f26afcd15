// BuildWorker (§4.2–§4.4): decides which diskimages need a build (none yet, rebuild-age
// expired, formats missing, `image-build` requested), takes the per-image lock so one builder in
// the cluster builds it, runs disk-image-create and records the ImageBuild. A failed build leaves
// a `failed` record (with its reason and log in the build's progress znode) and no local files.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config, DiskImage } from '@nodepool-ts/core/config';
import { newImageBuild, type ImageBuild } from '@nodepool-ts/core/model';
import { isNoNode } from '@nodepool-ts/core/zk';
import {
  buildBaseName, buildFormats, buildLogPath, dibCommand, dibEnvironment, pruneBuildLogs, removeBuildFiles,
  resolveExecutable, runDib, type DibResult,
} from './dib.js';
import { failureReason, type DibProgress } from './progress.js';
import { STATUS_BUILDING, STATUS_IDLE, STATUS_PAUSED } from './metrics.js';
import { Worker, type BuilderContext, type WorkerTiming } from './worker.js';

/** Why `diskimage` needs a scheduled build now (null = it does not). Pure, for tests. */
export function scheduledBuildReason(diskimage: DiskImage, newestReady: ImageBuild | null, nowS: number): string | null {
  if (diskimage.pause) return null;
  const formats = buildFormats(diskimage);
  if (formats.length === 0) return null;
  if (newestReady === null) return 'no ready build';
  if (Math.trunc(nowS) - newestReady.state_time >= diskimage.rebuildAge) return `rebuild-age of ${diskimage.rebuildAge}s reached`;
  const have = new Set(newestReady.formats);
  const missing = formats.filter((f) => !have.has(f));
  if (missing.length > 0) return `formats ${missing.join(',')} missing from build ${newestReady.id ?? '?'}`;
  return null;
}

/** The JSON kept in `.../builds/<id>/progress` (nodepool-ts addition; `image-build --wait` reads it). */
export interface BuildProgressRecord {
  state: 'building' | 'ready' | 'failed';
  builder: string;
  builder_id: string;
  /** the build log on the builder host */
  log: string;
  formats: string[];
  started: number;
  updated: number;
  phase: string | null;
  script: string | null;
  element: string | null;
  step: string | null;
  lines: number;
  rc: number | null;
  reason: string | null;
}

/** Writes progress at most every `minIntervalMs`, always the latest; the final write is awaited. */
class ProgressPublisher {
  private record: BuildProgressRecord;
  private timer: NodeJS.Timeout | null = null;
  private lastWrite = 0;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly ctx: BuilderContext, private readonly image: string, private readonly buildId: string,
    initial: BuildProgressRecord, private readonly minIntervalMs = 500) {
    this.record = initial;
  }

  update(p: DibProgress): void {
    this.record = {
      ...this.record, phase: p.phase, script: p.script, element: p.element, step: p.step, lines: p.lines,
      updated: Date.now() / 1000,
    };
    if (this.timer !== null) return;
    const wait = Math.max(0, this.lastWrite + this.minIntervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, wait);
  }

  async finish(fields: Partial<BuildProgressRecord>): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.record = { ...this.record, ...fields, updated: Date.now() / 1000 };
    this.flush();
    await this.writing;
  }

  flush(): void {
    const snapshot = { ...this.record };
    this.lastWrite = Date.now();
    this.writing = this.writing.then(async () => {
      try {
        await this.ctx.zk.storeBuildProgress(this.image, this.buildId, { ...snapshot });
      } catch {
        // progress is for people watching; the build record is what counts
      }
    });
  }
}

export class BuildWorker extends Worker {
  private readonly abort = new AbortController();
  /** image -> STATUS_IDLE / BUILDING / PAUSED, as last seen by this worker (builder stats) */
  readonly imageStatus = new Map<string, number>();

  constructor(index: number, ctx: BuilderContext, timing: WorkerTiming) {
    super(`BuildWorker.${index}`, ctx, timing);
    ctx.stopSignal.addEventListener('abort', () => this.abort.abort(), { once: true });
  }

  /** True while this worker runs disk-image-create. */
  get building(): boolean {
    return [...this.imageStatus.values()].includes(STATUS_BUILDING);
  }

  protected async cycle(): Promise<void> {
    const config = await this.ctx.reloadConfig();
    for (const name of this.imageStatus.keys()) if (!config.diskimages.has(name)) this.imageStatus.delete(name);
    for (const diskimage of config.diskimages.values()) {
      if (!this.canWork) return;
      try {
        const paused = diskimage.pause || await this.ctx.zk.isImagePaused(diskimage.name);
        this.imageStatus.set(diskimage.name, paused ? STATUS_PAUSED : STATUS_IDLE);
        if (!paused) await this.checkScheduled(config, diskimage);
      } catch (err) {
        this.log.error({ err }, `Exception checking for scheduled update of diskimage ${diskimage.name}: ${(err as Error).message}`);
      }
    }
    for (const diskimage of config.diskimages.values()) {
      if (!this.canWork) return;
      try {
        await this.checkManual(config, diskimage);
      } catch (err) {
        this.log.error({ err }, `Exception checking for manual update of diskimage ${diskimage.name}: ${(err as Error).message}`);
      }
    }
  }

  private async checkScheduled(config: Config, diskimage: DiskImage): Promise<void> {
    const zk = this.ctx.zk;
    const [newest] = await zk.getMostRecentBuilds(1, diskimage.name, 'ready');
    const why = scheduledBuildReason(diskimage, newest ?? null, Date.now() / 1000);
    // (not paused: the cycle checked that just before)
    if (why === null) return;
    const lock = zk.imageBuildLock(diskimage.name);
    if (!(await lock.acquire({ blocking: false }))) return;
    try {
      // another builder may have finished a build between our check and the lock
      const [again] = await zk.getMostRecentBuilds(1, diskimage.name, 'ready');
      if ((again?.id ?? null) !== (newest?.id ?? null)) return;
      this.log.info(`Building image ${diskimage.name} (${why})`);
      await this.build(config, diskimage);
    } finally {
      await lock.release();
    }
  }

  private async checkManual(config: Config, diskimage: DiskImage): Promise<void> {
    if (diskimage.pause) return;
    const zk = this.ctx.zk;
    // a paused image keeps its request: it is built once unpaused (Nodepool)
    if (!(await zk.hasBuildRequest(diskimage.name)) || await zk.isImagePaused(diskimage.name)) return;
    const lock = zk.imageBuildLock(diskimage.name);
    if (!(await lock.acquire({ blocking: false }))) return;
    try {
      if (!(await zk.hasBuildRequest(diskimage.name))) return;
      this.log.info(`Manual build request for image ${diskimage.name}`);
      const result = await this.build(config, diskimage);
      // a failed build leaves the request: the next cycle tries again (Nodepool)
      if (result?.state === 'ready') await zk.removeBuildRequest(diskimage.name);
    } finally {
      await lock.release();
    }
  }

  /** Record a new build, run DIB, record the outcome. Caller holds the per-image lock. */
  private async build(config: Config, diskimage: DiskImage): Promise<ImageBuild | null> {
    const zk = this.ctx.zk;
    const imagesDir = config.imagesDir;
    if (imagesDir === null) throw new Error('No images-dir specified in config.');
    const formats = buildFormats(diskimage);
    const record = newImageBuild({
      state: 'building', builder: this.ctx.hostname, builder_id: this.ctx.builderId, formats,
      username: diskimage.username,
    });
    const buildId = await zk.storeBuild(diskimage.name, record);
    const base = buildBaseName(diskimage.name, buildId);
    this.ctx.activeBuilds.add(base);
    this.imageStatus.set(diskimage.name, STATUS_BUILDING);
    try {
      return await this.runBuild(config, diskimage, imagesDir, formats, buildId, base);
    } finally {
      this.ctx.activeBuilds.delete(base);
      this.imageStatus.set(diskimage.name, STATUS_IDLE);
    }
  }

  private async runBuild(config: Config, diskimage: DiskImage, imagesDir: string, formats: string[], buildId: string,
    base: string): Promise<ImageBuild | null> {
    const zk = this.ctx.zk;
    const filename = join(imagesDir, base);
    const logFile = buildLogPath(config.buildLogDir, diskimage.name, buildId);
    const started = Date.now() / 1000;
    const progress = new ProgressPublisher(this.ctx, diskimage.name, buildId, {
      state: 'building', builder: this.ctx.hostname, builder_id: this.ctx.builderId, log: logFile, formats,
      started, updated: started, phase: null, script: null, element: null, step: 'starting disk-image-create',
      lines: 0, rc: null, reason: null,
    });
    progress.flush();

    const gen = zk.sessionGeneration;
    let result: DibResult | null = null;
    let reason: string | null = null;
    try {
      await pruneBuildLogs(config.buildLogDir, diskimage.name, config.buildLogRetention).catch((err: unknown) => {
        this.log.warn(`Could not prune build logs in ${config.buildLogDir}: ${(err as Error).message}`);
      });
      const argv = dibCommand(this.ctx.dibCmd, formats, filename, diskimage.elements);
      const exe = await resolveExecutable(argv[0] ?? '', this.ctx.env.PATH);
      if (exe === null) {
        reason = `disk-image-create command not found: ${argv[0] ?? '(empty)'} (install diskimage-builder, or check PATH)`;
      } else {
        argv[0] = exe;
        const env = dibEnvironment(this.ctx.env, {
          diskimage, filename, elementsDir: config.elementsDir, shippedElementsDir: this.ctx.shippedElementsDir,
          dibExecutable: exe,
        });
        this.log.info(`Running ${argv.join(' ')}`);
        this.log.info(`Logging to ${logFile}`);
        result = await runDib({
          argv, env, logFile, timeoutMs: diskimage.buildTimeout * 1000, signal: this.abort.signal,
          killGraceMs: this.ctx.killGraceMs, onProgress: (p) => progress.update(p),
        });
        if (result.logError !== null) this.log.warn(result.logError);
        if (result.aborted) reason = 'nodepool-builder stopped during the build';
        else if (result.rc !== 0 || result.execError !== null) {
          reason = failureReason(result.progress, result.rc, {
            timedOut: result.timedOut, timeoutS: diskimage.buildTimeout, execError: result.execError,
          });
        } else {
          const missing = await missingOutputs(filename, formats);
          if (missing.length > 0) reason = `disk-image-create succeeded but did not write ${missing.map((f) => `${base}.${f}`).join(', ')}`;
        }
      }
    } catch (err) {
      reason = `build error: ${(err as Error).message}`;
    }

    // The session may have been interrupted during the build: wait for it before the final write.
    if (zk.state !== 'connected') {
      this.log.info('ZooKeeper suspended during build. Waiting');
      await zk.waitConnected().catch(() => false);
    }
    if (reason === null && zk.sessionGeneration !== gen) {
      // our lock vanished with the session: another builder may be building this image too
      reason = 'ZooKeeper session lost during the build';
      this.log.info(`ZooKeeper lost while building ${diskimage.name}`);
    }

    const state = reason === null ? 'ready' : 'failed';
    const final = newImageBuild({
      state, builder: this.ctx.hostname, builder_id: this.ctx.builderId, username: diskimage.username,
      formats: state === 'ready' ? formats : [],
    });
    const sizes: Record<string, number> = {};
    if (state === 'ready') {
      for (const f of formats) {
        const st = await stat(`${filename}.${f}`).catch(() => null);
        if (st !== null) sizes[f] = st.blocks * 512;
      }
    } else {
      // nothing half-written stays behind; the failed record is cleaned up by the CleanupWorker
      await removeBuildFiles(imagesDir, base).catch((err: unknown) => {
        this.log.error(`Could not remove files of failed build ${base}: ${(err as Error).message}`);
      });
    }
    const rc = result?.rc ?? 1;
    // progress first: whoever sees the final build record finds the outcome (reason, rc) there
    await progress.finish({ state, rc, reason });
    let stored = true;
    try {
      await zk.storeBuild(diskimage.name, final, buildId);
    } catch (err) {
      stored = false;
      this.log.error({ err }, `Unable to store final state of build ${base}: ${(err as Error).message}; removing its files`);
      if (state === 'ready') await removeBuildFiles(imagesDir, base).catch(() => undefined);
      if (!isNoNode(err)) reason ??= `could not record the build: ${(err as Error).message}`;
      await progress.finish({ state: 'failed', rc, reason: reason ?? 'the build record was removed during the build' });
    }
    if (state === 'ready' && stored) {
      this.log.info(`DIB image ${diskimage.name} is built (build ${buildId})`);
    } else {
      this.log.info({ reason, log: logFile }, `DIB failed creating ${diskimage.name} (build ${buildId}): ${reason ?? 'final record not stored'}; log: ${logFile}`);
    }
    this.ctx.metrics.onBuildFinished({
      image: diskimage.name, buildId, state: stored ? state : 'failed', rc, durationMs: result?.durationMs ?? 0,
      outputStalledMs: result?.outputStalledMs ?? 0,
      finishedAt: Date.now() / 1000, sizes: stored && state === 'ready' ? sizes : {}, reason, logFile,
    });
    if (state === 'ready' && stored) this.ctx.wakeUploadWorkers();
    return stored ? final : null;
  }
}

async function missingOutputs(filename: string, formats: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const f of formats) {
    // DIB writes `.tgz` for tgz, `.squash` for squashfs; docker/aci are not files we upload
    const ext = f === 'squashfs' ? 'squash' : f;
    if (f === 'docker') continue;
    const st = await stat(`${filename}.${ext}`).catch(() => null);
    if (st === null || !st.isFile()) missing.push(ext);
  }
  return missing;
}
