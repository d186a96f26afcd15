// The builder's measurements (§8, builder part), reported through this small interface so the
// statsd emitter (hot-shots, Nodepool's key names) plugs in without the workers knowing statsd:
//   nodepool.dib_image_build.<image>.<ext>.size        gauge  sizes[ext] (success only)
//   nodepool.dib_image_build.<image>.status.duration   timer  durationMs
//   nodepool.dib_image_build.<image>.status.rc         gauge  rc
//   nodepool.dib_image_build.<image>.status.last_build gauge  finishedAt (Unix seconds)
//   nodepool.image_update.<image>.<provider>           timer + counter, successful uploads

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

export interface BuilderMetrics {
  onBuildFinished(e: BuildFinished): void;
  onUploadFinished(e: UploadFinished): void;
}

export const NO_METRICS: BuilderMetrics = Object.freeze({
  onBuildFinished(): void {},
  onUploadFinished(): void {},
});
