// The builder's measurements (§8, builder part), reported through this small interface so the
// statsd emitter (hot-shots, Nodepool's key names) plugs in without the workers knowing statsd:
//   nodepool.dib_image_build.<image>.<ext>.size        gauge  sizes[ext] (success only)
//   nodepool.dib_image_build.<image>.status.duration   timer  durationMs
//   nodepool.dib_image_build.<image>.status.rc         gauge  rc
//   nodepool.dib_image_build.<image>.status.last_build gauge  finishedAt (Unix seconds)
//   nodepool.image_update.<image>.<provider>           timer + counter, successful uploads
// and every 10 s (BuilderStatus, later Nodepool's builder stats):
//   nodepool.image_build_requests, nodepool.image.<image>.image_build_requests   gauges (pending requests)
//   nodepool.builder.<host>.{current_builds,current_uploads,build_workers,upload_workers}   gauges
//   nodepool.builder.<host>.image.<image>.build.state                      gauge 0 idle, 1 building, 3 paused
//   nodepool.builder.<host>.image.<image>.provider.<p>.upload.state        gauge 0 idle, 2 uploading, 3 paused
// StatsdBuilderMetrics sends them when STATSD_HOST is set (STATSD_PORT, default 8125), as Nodepool.
import StatsDClient from 'hot-shots';
import type { StatsD } from 'hot-shots';

export interface BuildFinished {
  image: string;
  buildId: string;
  state: 'ready' | 'failed';
  /** disk-image-create exit code (1 after a timeout) */
  rc: number;
  /** DIB run time in ms */
  durationMs: number;
  /** ms DIB's output waited for the build log (back-pressure); ~0 means the builder never slowed DIB */
  outputStalledMs: number;
  /** Unix seconds when the build finished */
  finishedAt: number;
  /** bytes actually allocated (st_blocks * 512) per format; empty unless ready */
  sizes: Record<string, number>;
  /** null when ready */
  reason: string | null;
  logFile: string;
}

export interface UploadFinished {
  image: string;
  buildId: string;
  provider: string;
  uploadId: string;
  state: 'ready' | 'failed';
  durationMs: number;
  /** bytes uploaded (the image file's size) */
  bytes: number;
}

/** Nodepool's build/upload status constants of the builder state gauges */
export const STATUS_IDLE = 0;
export const STATUS_BUILDING = 1;
export const STATUS_UPLOADING = 2;
export const STATUS_PAUSED = 3;

/** What the builder is doing, sampled every status interval. */
export interface BuilderStatus {
  hostname: string;
  buildWorkers: number;
  uploadWorkers: number;
  currentBuilds: number;
  currentUploads: number;
  /** image -> 1 when a build request waits (not yet being built), else 0 */
  buildRequests: Map<string, number>;
  /** image -> STATUS_IDLE / BUILDING / PAUSED */
  buildState: Map<string, number>;
  /** image -> provider -> STATUS_IDLE / UPLOADING / PAUSED */
  uploadState: Map<string, Map<string, number>>;
}

export interface BuilderMetrics {
  onBuildFinished(e: BuildFinished): void;
  onUploadFinished(e: UploadFinished): void;
  /** called every status interval when present */
  onStatus?(s: BuilderStatus): void;
  close?(): Promise<void>;
}

export const NO_METRICS: BuilderMetrics = Object.freeze({
  onBuildFinished(): void {},
  onUploadFinished(): void {},
});

/** Graphite splits on '.', statsd on ':' (names come from the config). */
function safe(name: string): string {
  return name.replace(/[.:]/g, '_');
}

/** Nodepool's builder statsd keys, sent with hot-shots. */
export class StatsdBuilderMetrics implements BuilderMetrics {
  private constructor(private readonly statsd: StatsD) {}

  /** The emitter when STATSD_HOST is set in `env`, else NO_METRICS. */
  static fromEnv(env: NodeJS.ProcessEnv): BuilderMetrics {
    const host = env.STATSD_HOST;
    if (!host) return NO_METRICS;
    const port = Number(env.STATSD_PORT ?? 8125);
    return new StatsdBuilderMetrics(new StatsDClient({
      host, port: Number.isInteger(port) && port > 0 ? port : 8125, protocol: 'udp', maxBufferSize: 1400, bufferFlushInterval: 50,
    }));
  }

  onBuildFinished(e: BuildFinished): void {
    const key = `nodepool.dib_image_build.${safe(e.image)}`;
    for (const [ext, bytes] of Object.entries(e.sizes)) this.statsd.gauge(`${key}.${ext}.size`, bytes);
    this.statsd.timing(`${key}.status.duration`, Math.round(e.durationMs));
    this.statsd.gauge(`${key}.status.rc`, e.rc);
    this.statsd.gauge(`${key}.status.last_build`, Math.trunc(e.finishedAt));
  }

  onUploadFinished(e: UploadFinished): void {
    if (e.state !== 'ready') return;
    const key = `nodepool.image_update.${safe(e.image)}.${safe(e.provider)}`;
    this.statsd.timing(key, Math.round(e.durationMs));
    this.statsd.increment(key);
  }

  onStatus(s: BuilderStatus): void {
    const host = `nodepool.builder.${safe(s.hostname)}`;
    let requests = 0;
    for (const [image, n] of s.buildRequests) {
      requests += n;
      this.statsd.gauge(`nodepool.image.${safe(image)}.image_build_requests`, n);
    }
    this.statsd.gauge('nodepool.image_build_requests', requests);
    this.statsd.gauge(`${host}.current_builds`, s.currentBuilds);
    this.statsd.gauge(`${host}.current_uploads`, s.currentUploads);
    this.statsd.gauge(`${host}.build_workers`, s.buildWorkers);
    this.statsd.gauge(`${host}.upload_workers`, s.uploadWorkers);
    for (const [image, state] of s.buildState) this.statsd.gauge(`${host}.image.${safe(image)}.build.state`, state);
    for (const [image, providers] of s.uploadState) {
      for (const [provider, state] of providers) {
        this.statsd.gauge(`${host}.image.${safe(image)}.provider.${safe(provider)}.upload.state`, state);
      }
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.statsd.close(() => resolve()));
  }
}
