// Errors of the web API. Every error a client sees is JSON `{"code": ..., "message": ...}` with
// the HTTP status that says who must act: 4xx the caller, 5xx the operator.

export type ApiErrorCode =
  | 'not_found'
  | 'method_not_allowed'
  | 'not_acceptable'
  | 'invalid_body'
  | 'unsupported_media_type'
  | 'body_too_large'
  | 'unknown_label'
  | 'missing_token'
  | 'invalid_token'
  | 'token_revoked'
  | 'token_expired'
  | 'forbidden'
  | 'insufficient_scope'
  | 'rate_limited'
  | 'max_nodes_exceeded'
  | 'lease_not_found'
  | 'lease_conflict'
  | 'lease_held_elsewhere'
  | 'lease_failed'
  | 'host_exists'
  | 'host_not_found'
  | 'database_unavailable'
  | 'zookeeper_unavailable'
  | 'busy'
  | 'internal_error';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    /** extra fields for the client (never secrets): limits, the offending field, retry delay */
    readonly details: Record<string, unknown> = {},
    /** seconds, sent as Retry-After */
    readonly retryAfter: number | null = null,
    /** response headers this error sets (e.g. WWW-Authenticate of insufficient_scope) */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.details };
  }
}

/** Something the web layer cannot do right now (database down, ZooKeeper suspended). */
export class UnavailableError extends ApiError {
  constructor(code: 'database_unavailable' | 'zookeeper_unavailable', message: string) {
    super(503, code, message, {}, 5);
    this.name = 'UnavailableError';
  }
}
