// @nodepool-ts/builder: the nodepool-builder daemon as a library (tests, the benchmark).
export { Builder, type BuilderOptions, type ProviderFactory } from './builder.js';
export { BuildWorker, scheduledBuildReason, type BuildProgressRecord } from './build-worker.js';
export { UploadWorker, imageProviders, uploadMetadata, type ImageProvider } from './upload-worker.js';
export { CleanupWorker, buildsToKeep } from './cleanup-worker.js';
export {
  DibImageFile, BUILDER_ID_FILE, QEMU_IMG_COMPAT_OPTIONS, SHIPPED_ELEMENTS_DIR, buildBaseName, buildFormats,
  buildLogPath, dibCommand, dibEnvironment, hasLocalFiles, pruneBuildLogs, readOrCreateBuilderId, removeBuildFiles,
  resolveExecutable, runDib, shellSplit, type DibEnvOptions, type DibResult, type DibRunOptions,
} from './dib.js';
export { DibProgressParser, failureReason, type DibProgress } from './progress.js';
export {
  NO_METRICS, StatsdBuilderMetrics, STATUS_IDLE, STATUS_BUILDING, STATUS_UPLOADING, STATUS_PAUSED,
  type BuilderMetrics, type BuilderStatus, type BuildFinished, type UploadFinished,
} from './metrics.js';
export { BuilderError, type BuilderErrorCode } from './errors.js';
export { FAKE_DIB_CMD, main } from './main.js';
