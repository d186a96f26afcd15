// Errors of the ZooKeeper layer. Each carries a code callers can switch on and the path or
// servers involved, so a log line says what to look at.

export type ZkErrorCode =
  | 'ENONODE' | 'ENODEEXISTS' | 'ENOTEMPTY' | 'EBADVERSION'
  | 'ECONNLOSS' | 'ESESSIONEXPIRED' | 'ECLOSED' | 'EBADPATH' | 'EZK';

export class ZkError extends Error {
  constructor(readonly code: ZkErrorCode, message: string, readonly context: Record<string, unknown> = {}) {
    super(message);
    this.name = 'ZkError';
  }
}

/** An `import-image-data` entry that is not an image build, upload or pause znode (nothing was written). */
export class ImageDataError extends Error {
  constructor(readonly path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'ImageDataError';
  }
}

/** The initial connection did not succeed within `connectTimeoutMs`. */
export class ZkConnectError extends Error {
  readonly code = 'ECONNECT' as const;
  /** `reason`: why the last attempt failed (refused, TLS handshake ...), when known */
  constructor(message: string, readonly servers: string, readonly timeoutMs: number, readonly reason: string | null = null) {
    super(message);
    this.name = 'ZkConnectError';
  }
}

/** A blocking lock acquire ran out of time (kazoo's LockTimeout). */
export class LockTimeoutError extends Error {
  readonly code = 'ELOCKTIMEOUT' as const;
  constructor(readonly path: string, readonly timeoutMs: number) {
    super(`Failed to acquire lock on ${path} after ${timeoutMs / 1000} seconds`);
    this.name = 'LockTimeoutError';
  }
}

/** Lock misuse or loss: "Did not get lock on <path>", unlocking what we do not hold, ... */
export class LockError extends Error {
  readonly code = 'ELOCK' as const;
  constructor(message: string, readonly path: string | null = null) {
    super(message);
    this.name = 'LockError';
  }
}

/** True for errors after which the operation may succeed once the session is usable again. */
export function isRetryable(err: unknown): boolean {
  return err instanceof ZkError && (err.code === 'ECONNLOSS' || err.code === 'ESESSIONEXPIRED');
}

export function isNoNode(err: unknown): boolean {
  return err instanceof ZkError && err.code === 'ENONODE';
}

export function isNodeExists(err: unknown): boolean {
  return err instanceof ZkError && err.code === 'ENODEEXISTS';
}

/** `make()` with no stack trace captured for the errors it creates (see toZkError). */
export function withoutStack<T>(make: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
