// Classified provider errors. The launcher's retry loop (§3.5) and the deleted-node worker (§3.9)
// act on the class of failure, not on the text, so every driver maps its cloud's errors onto
// these before they leave the driver.

/**
 * What the caller may do about a failure:
 * - `retryable`: the same call may succeed later (HTTP 5xx, timeouts, rate limits);
 * - `quota`: the cloud refused for lack of quota; the launcher invalidates its quota cache and
 *   aborts the node so the request is relaunched once quota frees up (§3.5);
 * - `fatal`: retrying the same call will fail again (bad request, bad image, bad flavor,
 *   a server that went to ERROR);
 * - `notfound`: the object is gone; for deletes this means the work is already done (§3.9).
 */
export type ErrorKind = 'retryable' | 'quota' | 'fatal' | 'notfound';

export interface ProviderErrorContext {
  /** the ProviderManager method that failed, e.g. `createServer` */
  operation?: string;
  /** the driver's underlying error (HTTP error, fs error, ...) */
  cause?: unknown;
}

export class ProviderError extends Error {
  readonly code = 'EPROVIDER' as const;
  readonly kind: ErrorKind;
  /** provider name from nodepool.yaml, so a log line names the cloud that failed */
  readonly provider: string;
  readonly operation: string | null;

  constructor(provider: string, kind: ErrorKind, message: string, ctx: ProviderErrorContext = {}) {
    super(message, ctx.cause === undefined ? undefined : { cause: ctx.cause });
    this.name = 'ProviderError';
    this.kind = kind;
    this.provider = provider;
    this.operation = ctx.operation ?? null;
  }
}

/** The numbers behind a quota refusal, when the driver knows them (Nova tells us). */
export interface QuotaExceededDetail {
  resource: 'instances' | 'cores' | 'ram' | string;
  requested: number;
  used: number;
  limit: number;
}

/**
 * The cloud refused to create for lack of quota. The message always contains "quota exceeded"
 * because Nodepool (and code ported from it) recognises quota failures by that text.
 */
export class QuotaExceededError extends ProviderError {
  readonly detail: QuotaExceededDetail | null;

  constructor(provider: string, message: string, detail: QuotaExceededDetail | null = null,
    ctx: ProviderErrorContext = {}) {
    const text = /quota exceeded/i.test(message) ? message : `quota exceeded: ${message}`;
    super(provider, 'quota', text, ctx);
    this.name = 'QuotaExceededError';
    this.detail = detail;
  }
}

export type ResourceType = 'server' | 'image' | 'flavor' | 'availability-zone';

/** The object does not exist (any more). Deleting a missing server is success for the caller. */
export class NotFoundError extends ProviderError {
  readonly resource: ResourceType;
  readonly resourceId: string;

  constructor(provider: string, resource: ResourceType, resourceId: string, ctx: ProviderErrorContext = {}) {
    super(provider, 'notfound', `${resource} ${resourceId} not found`, ctx);
    this.name = 'NotFoundError';
    this.resource = resource;
    this.resourceId = resourceId;
  }
}

/**
 * A server reached a state from which it will not become ACTIVE (Nodepool's
 * LaunchStatusException). Fatal for this server; the launcher deletes it and launches another.
 */
export class ServerStatusError extends ProviderError {
  readonly serverId: string;
  readonly status: string;

  constructor(provider: string, serverId: string, status: string, fault: string | null,
    ctx: ProviderErrorContext = {}) {
    super(provider, 'fatal',
      `server ${serverId} went to status ${status}${fault ? `: ${fault}` : ''}`, ctx);
    this.name = 'ServerStatusError';
    this.serverId = serverId;
    this.status = status;
  }
}

/** A wait (boot, deletion) ran out of time; the cloud may still get there, hence retryable. */
export class ProviderTimeoutError extends ProviderError {
  readonly timeoutMs: number;

  constructor(provider: string, what: string, timeoutMs: number, ctx: ProviderErrorContext = {}) {
    super(provider, 'retryable', `timeout after ${timeoutMs} ms waiting for ${what}`, ctx);
    this.name = 'ProviderTimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The caller gave up (AbortSignal) or the provider was stopped while the call waited. Nothing
 * is known about the cloud's side, so it is `retryable`; a stopping launcher ignores it anyway.
 */
export class ProviderAbortedError extends ProviderError {
  constructor(provider: string, operation: string) {
    super(provider, 'retryable', `${operation} aborted`, { operation });
    this.name = 'ProviderAbortedError';
  }
}

export function isProviderError(err: unknown): err is ProviderError {
  return err instanceof ProviderError;
}

/** The kind of any thrown value: unclassified errors are treated as fatal. */
export function errorKind(err: unknown): ErrorKind {
  return err instanceof ProviderError ? err.kind : 'fatal';
}

/**
 * Nodepool's rule (§3.5): a launch failure whose message contains "quota exceeded"
 * (case-insensitive) is a quota failure, whatever raised it.
 */
export function isQuotaError(err: unknown): boolean {
  if (err instanceof ProviderError && err.kind === 'quota') return true;
  return err instanceof Error && /quota exceeded/i.test(err.message);
}
