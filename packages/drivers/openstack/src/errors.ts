// Turning what OpenStack answers (or a dead socket) into the classified ProviderErrors the
// launcher acts on. Every message names the provider's cloud, the API call and the service's own
// explanation, and passes through redact() so no password or token can reach a log line.
import { ProviderError, QuotaExceededError, type QuotaExceededDetail } from '@nodepool-ts/core/provider';

/** An HTTP answer that was not a success, as seen by the session (own modules or pkgcloud). */
export interface HttpFailure {
  status: number;
  /** parsed JSON body, or the raw text (Glance errors are HTML) */
  body: unknown;
}

/** The socket-level failures that mean "the cloud is unreachable right now". */
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE',
  'ESOCKETTIMEDOUT', 'UND_ERR_SOCKET', 'ECONNABORTED',
]);

/**
 * Replaces every secret (password, tokens) found in `text` with `***`. Secrets shorter than 4
 * characters are ignored: masking them would mangle ordinary words.
 */
export function redact(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const s of secrets) {
    if (s.length < 4) continue;
    out = out.split(s).join('***');
  }
  return out;
}

/** The human part of an OpenStack error body, whichever service sent it. */
export function errorMessage(body: unknown): string {
  if (typeof body === 'string') {
    // Glance (webob): `<html>...<h1>404 Not Found</h1>\n  No image found with ID x<br />...`
    const afterH1 = /<\/h1>([\s\S]*)$/i.exec(body)?.[1] ?? body;
    return afterH1.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 500);
  }
  if (body !== null && typeof body === 'object') {
    const rec = body as Record<string, unknown>;
    // Neutron: {"NeutronError": {"type", "message", "detail"}}
    const ne = rec.NeutronError;
    if (ne && typeof ne === 'object' && typeof (ne as Record<string, unknown>).message === 'string') {
      return String((ne as Record<string, unknown>).message);
    }
    // Keystone: {"error": {"code", "title", "message"}}; Nova: {"badRequest": {"code", "message"}}
    for (const v of Object.values(rec)) {
      if (v && typeof v === 'object' && typeof (v as Record<string, unknown>).message === 'string') {
        return String((v as Record<string, unknown>).message);
      }
    }
    if (typeof rec.message === 'string') return rec.message;
    if (typeof rec.err === 'string') return errorMessage(rec.err);
  }
  return '';
}

/** Nova's "Quota exceeded for cores: Requested 4, but already used 8 of 10 cores". */
export function parseQuotaMessage(message: string): QuotaExceededDetail | null {
  const m = /Quota exceeded for (\w+): Requested (\d+), but already used (\d+) of (-?\d+)/i.exec(message);
  if (!m) return null;
  return { resource: m[1] ?? '', requested: Number(m[2]), used: Number(m[3]), limit: Number(m[4]) };
}

export interface ErrorContext {
  provider: string;
  cloud: string;
  /** ProviderManager method, e.g. `createServer` */
  operation: string;
  /** `compute GET /servers/detail` */
  call: string;
  /** the URL called (or the service's catalog URL), named when its TLS certificate is refused */
  url?: string;
  secrets: Iterable<string>;
}

/** Classifies an HTTP failure. Quota refusals become QuotaExceededError whatever the service. */
export function httpError(ctx: ErrorContext, failure: HttpFailure): ProviderError {
  const said = errorMessage(failure.body);
  const base = `cloud ${ctx.cloud}: ${ctx.call} failed with HTTP ${failure.status}${said ? `: ${said}` : ''}`;
  const message = redact(base, ctx.secrets);
  const opts = { operation: ctx.operation };
  const quota = /quota exceeded|overquota|over ?limit/i.test(said)
    || failure.status === 413
    || (failure.body !== null && typeof failure.body === 'object'
      && (failure.body as Record<string, { type?: unknown }>).NeutronError?.type === 'OverQuota');
  if (quota && failure.status >= 400 && failure.status < 500) {
    return new QuotaExceededError(ctx.provider, message, parseQuotaMessage(said), opts);
  }
  if (failure.status === 401) {
    return new ProviderError(ctx.provider, 'fatal',
      redact(`cloud ${ctx.cloud}: authentication failed (${ctx.call}: HTTP 401${said ? `: ${said}` : ''}); check the credentials in clouds.yaml`,
        ctx.secrets), opts);
  }
  if (failure.status === 404) return new ProviderError(ctx.provider, 'notfound', message, opts);
  if (failure.status === 429 || failure.status >= 500) return new ProviderError(ctx.provider, 'retryable', message, opts);
  return new ProviderError(ctx.provider, 'fatal', message, opts);
}

/** OpenSSL's and Node's codes for a server certificate that was not accepted. */
const TLS_CERT_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'INVALID_CA', 'INVALID_PURPOSE',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH',
]);

/** A failure before any HTTP status: refused, reset, DNS, timeout, a TLS certificate refused. */
export function transportError(ctx: ErrorContext, err: unknown): ProviderError {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const text = typeof e?.message === 'string' ? e.message : String(err);
  if (TLS_CERT_CODES.has(code)) {
    // a configuration problem (the CA bundle), not an outage: retrying will not help
    return new ProviderError(ctx.provider, 'fatal', redact(
      `cloud ${ctx.cloud}: the TLS certificate of ${ctx.url ?? ctx.call} is not trusted (${code}: ${text}; ${ctx.call}); `
      + 'set cacert in clouds.yaml to the CA bundle that signed it (or verify: false to skip the check)',
      ctx.secrets), { operation: ctx.operation });
  }
  const unreachable = NETWORK_CODES.has(code) || /socket hang up|ECONNREFUSED|ECONNRESET|ETIMEDOUT/.test(text);
  const message = redact(unreachable
    ? `cloud ${ctx.cloud} is unreachable (${ctx.call}: ${code || text})`
    : `cloud ${ctx.cloud}: ${ctx.call} failed: ${text}`, ctx.secrets);
  return new ProviderError(ctx.provider, unreachable ? 'retryable' : 'fatal', message, { operation: ctx.operation });
}
