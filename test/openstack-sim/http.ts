// Small HTTP helpers shared by the simulated services: JSON bodies, the error bodies each
// OpenStack service really sends (they differ per service), and request ids.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';

export type Service = 'identity' | 'compute' | 'image' | 'network';

/** What a handler sees of a request once the service prefix is stripped. */
export interface SimRequest {
  service: Service;
  method: string;
  /** path below the service prefix, e.g. `/v2.1/servers/detail` */
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  raw: IncomingMessage;
  /** base URL of this simulator, e.g. `http://127.0.0.1:5000` */
  base: string;
  /** token record when the request carried a valid X-Auth-Token */
  auth: TokenInfo | null;
}

export interface TokenInfo {
  id: string;
  userId: string;
  userName: string;
  domainId: string;
  projectId: string;
  projectName: string;
  issuedAt: Date;
  expiresAt: Date;
  /** the token carries the admin role (tokens of an external Keystone: service users) */
  admin?: boolean;
  /** issued for this application credential */
  appCredentialId?: string;
  /** expires_at is written without a time zone (Keystone's, for a token capped at its credential's expiry) */
  expiresNaive?: boolean;
}

/** A handler's answer; `stream` handlers write the response themselves. */
export interface SimResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** send `body` as is (string) with this content type instead of JSON */
  contentType?: string;
}

export class HttpError extends Error {
  constructor(readonly response: SimResponse) {
    super(`HTTP ${response.status}`);
    this.name = 'HttpError';
  }
}

export function requestId(): string {
  return `req-${randomUUID()}`;
}

export async function readRaw(req: IncomingMessage, limit = 16 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > limit) throw new HttpError({ status: 413, body: { error: 'request body too large' } });
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** Parses a JSON request body; malformed JSON is the service's 400. */
export async function readJson(req: SimRequest): Promise<Record<string, unknown>> {
  const raw = await readRaw(req.raw);
  if (raw.length === 0) return {};
  try {
    const v: unknown = JSON.parse(raw.toString('utf8'));
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new HttpError(badRequest(req.service, 'Malformed request body'));
}

// ---- error bodies, per service ---------------------------------------------------------------

const NOVA_FAULT: Record<number, string> = {
  400: 'badRequest', 401: 'unauthorized', 403: 'forbidden', 404: 'itemNotFound', 405: 'badMethod',
  409: 'conflict', 413: 'overLimit', 415: 'badMediaType', 500: 'computeFault', 501: 'notImplemented',
  503: 'serviceUnavailable',
};

const REASONS: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  409: 'Conflict', 413: 'Request Entity Too Large', 415: 'Unsupported Media Type', 500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** The error body a real service sends for `status` with `message`. */
export function serviceError(service: Service, status: number, message: string, neutronType?: string): SimResponse {
  switch (service) {
    case 'identity':
      return { status, body: { error: { code: status, message, title: REASONS[status] ?? 'Error' } } };
    case 'compute':
      return { status, body: { [NOVA_FAULT[status] ?? 'computeFault']: { code: status, message } } };
    case 'network':
      return {
        status,
        body: { NeutronError: { type: neutronType ?? (status >= 500 ? 'InternalServerError' : 'HTTPError'), message, detail: '' } },
      };
    case 'image': {
      // Glance (webob) answers errors in HTML.
      const reason = `${status} ${REASONS[status] ?? 'Error'}`;
      return {
        status,
        contentType: 'text/html; charset=UTF-8',
        body: `<html>\n <head>\n  <title>${reason}</title>\n </head>\n <body>\n  <h1>${reason}</h1>\n  ${message}<br /><br />\n\n\n\n </body>\n</html>`,
      };
    }
  }
}

export function badRequest(service: Service, message: string): SimResponse {
  return serviceError(service, 400, message);
}

export function notFound(service: Service, message: string, neutronType?: string): SimResponse {
  return serviceError(service, 404, message, neutronType);
}

/** keystonemiddleware's answer to a missing or expired token, for every service. */
export function unauthorized(): SimResponse {
  return {
    status: 401,
    headers: { 'WWW-Authenticate': 'Keystone uri="http://127.0.0.1/identity"' },
    body: { error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } },
  };
}

export function send(res: ServerResponse, r: SimResponse, extraHeaders: Record<string, string>): void {
  if (res.headersSent || res.destroyed) return;
  const headers: Record<string, string> = { ...extraHeaders, ...(r.headers ?? {}) };
  let payload: string | Buffer = '';
  if (r.body !== undefined && r.status !== 204) {
    if (r.contentType) {
      headers['Content-Type'] = r.contentType;
      payload = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
    } else {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(r.body);
    }
  }
  headers['Content-Length'] = String(Buffer.byteLength(payload));
  res.writeHead(r.status, headers);
  res.end(payload);
}

/** ISO 8601 the way Nova prints it: seconds precision, `Z`. */
export function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Keystone prints microseconds: `2026-11-27T12:00:00.000000Z`. */
export function isoMicro(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Neutron and Glance print `2026-11-27T12:00:00Z`. */
export const isoZ = isoSeconds;

export function isUuid(s: string): boolean {
  return /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i.test(s);
}
