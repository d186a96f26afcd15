// One authenticated session per provider: one Keystone v3 token (password or application
// credential, see auth.ts) and its service catalog, shared by pkgcloud's compute and network
// clients and by this driver's own small API modules (nova.ts, glance.ts, neutron.ts), which
// call over node:http(s). The token request is ours (pkgcloud's identity knows neither
// application credentials nor a CA bundle); its answer is handed to pkgcloud's identity object,
// so pkgcloud's clients use the same token and catalog and their re-authorization comes back
// here. Every API call — pkgcloud's or ours — goes through the provider's RateLimiter, has a
// timeout, is reported to onApiCall (for `nodepool.task.*` stats and call counting) and fails as
// a classified, redacted ProviderError. HTTPS trusts the cloud's `cacert` (or does not verify,
// `verify: false`) through this session's own agents: nothing process-wide is changed.
//
// pkgcloud (and its `request`-era dependencies) is imported on first use, so a launcher, builder
// or CLI without an OpenStack provider never loads it.
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import type { CloudConfig } from '@nodepool-ts/core/config';
import { ProviderAbortedError, ProviderError, ProviderTimeoutError, type RateLimiter } from '@nodepool-ts/core/provider';
import type {
  Abortable, Callback, ComputeClient, Identity, NetworkClient, OpenStackClientOptions, PkgcloudHttpError,
} from 'pkgcloud';
import { authSecret, cloudTls, keystoneAuth, type CloudTls, type KeystoneAuth } from './auth.js';
import { errorMessage, httpError, redact, transportError, type ErrorContext } from './errors.js';

export type ServiceType = 'identity' | 'compute' | 'image' | 'network';

/** One API call, for statsd (`nodepool.task.<provider>.<service>.<METHOD>.<name>`) and counting. */
export interface ApiCallEvent {
  provider: string;
  service: ServiceType;
  method: string;
  /** openstacksdk-style resource name: `servers_detail`, `server`, `image_file`, `tokens` */
  name: string;
  /** HTTP status, or null when no answer came (timeout, refused) */
  status: number | null;
  ms: number;
}

export interface SessionOptions {
  provider: string;
  cloud: CloudConfig;
  /** provider `region-name`, else the cloud's, else the first region of the catalog */
  region: string | null;
  limiter: RateLimiter;
  /** give up on one API call after this long (default 60 s) */
  apiTimeoutMs?: number;
  onApiCall?: (e: ApiCallEvent) => void;
}

export interface HttpCall {
  operation: string;
  /** send no X-Auth-Token (the token request itself) */
  anonymous?: boolean;
  /** stats name, e.g. `servers` */
  name: string;
  /** JSON request body */
  json?: unknown;
  /** raw request body (image data) with its length */
  stream?: Readable;
  contentLength?: number;
  headers?: Record<string, string>;
  query?: Record<string, string | number | undefined>;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** parsed JSON when the answer was JSON, else the text */
  body: unknown;
}

/** Re-authenticate this long before the token expires (keystoneauth's stale window). */
const EARLY_TOKEN_MS = 30_000;
const DEFAULT_API_TIMEOUT_MS = 60_000;

type PkgcloudModule = typeof import('pkgcloud').default;
let pkgcloudModule: Promise<PkgcloudModule> | null = null;

/** pkgcloud, loaded once per process on first use. */
export function loadPkgcloud(): Promise<PkgcloudModule> {
  pkgcloudModule ??= import('pkgcloud').then((m) => m.default);
  return pkgcloudModule;
}

/**
 * A Keystone timestamp. Keystone's times are UTC, but not always marked so: a token capped at
 * its application credential's expiry says `2026-11-28T01:32:30` (no zone), which JavaScript
 * would read as local time.
 */
export function keystoneTime(v: unknown): Date | null {
  if (typeof v !== 'string' || v === '') return null;
  const zoned = /(?:Z|[+-]\d\d:?\d\d)$/i.test(v);
  const d = new Date(zoned ? v : `${v}Z`);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** clouds.yaml `auth_url` without the version suffix pkgcloud appends itself. */
export function keystoneBase(authUrl: string): string {
  return authUrl.replace(/\/+$/, '').replace(/\/v3(\.\d+)?$/, '').replace(/\/v2\.0$/, '');
}

function rawAuth(cloud: CloudConfig): Record<string, unknown> {
  const a = cloud.raw.auth;
  return a !== null && typeof a === 'object' ? a as Record<string, unknown> : {};
}

function text(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined;
}

/** pkgcloud client options from a clouds.yaml entry (Keystone v3, domains by name or id). */
export function clientOptions(cloud: CloudConfig, region: string | null): OpenStackClientOptions {
  const auth = rawAuth(cloud);
  if (!cloud.authUrl) throw new Error(`cloud ${cloud.name} has no auth.auth_url in ${cloud.file}`);
  const opts: OpenStackClientOptions = {
    provider: 'openstack',
    authUrl: keystoneBase(cloud.authUrl),
    keystoneAuthVersion: 'v3',
    earlyTokenTimeout: EARLY_TOKEN_MS,
    strictSSL: cloud.raw.verify !== false && cloud.raw.insecure !== true,
    useInternal: cloud.raw.interface === 'internal',
  };
  const username = cloud.username ?? undefined;
  if (username) opts.username = username;
  if (cloud.password !== null) opts.password = cloud.password;
  if (cloud.projectId) opts.tenantId = cloud.projectId;
  else if (cloud.projectName) opts.tenantName = cloud.projectName;
  // os-client-config: `domain_name`/`domain_id` stand for both the user's and the project's domain
  const userDomainId = text(auth.user_domain_id) ?? text(auth.domain_id);
  const userDomainName = cloud.userDomainName ?? text(auth.domain_name);
  const projectDomainId = text(auth.project_domain_id) ?? text(auth.domain_id);
  const projectDomainName = cloud.projectDomainName ?? text(auth.domain_name);
  if (userDomainId) opts.domainId = userDomainId;
  else if (userDomainName) opts.domainName = userDomainName;
  if (projectDomainId) opts.projectDomainId = projectDomainId;
  else if (projectDomainName) opts.projectDomainName = projectDomainName;
  if (region) opts.region = region;
  return opts;
}

/**
 * The status a successful pkgcloud call was answered with. pkgcloud hands back only the parsed
 * body, so this is the status the API reference documents for the calls made through it:
 * Keystone's token POST 201, Nova's server DELETE and Neutron's port DELETE 204, every GET 200.
 */
export function successStatus(service: ServiceType, method: string): number {
  if (method === 'DELETE') return 204;
  if (method === 'POST' && service === 'identity') return 201;
  return 200;
}

export class OpenStackSession {
  readonly provider: string;
  readonly cloud: CloudConfig;
  /** values masked in every message: the password and every token seen */
  readonly secrets = new Set<string>();
  region: string | null;
  private readonly limiter: RateLimiter;
  private readonly apiTimeoutMs: number;
  private readonly onApiCall: ((e: ApiCallEvent) => void) | undefined;
  private computeClient: ComputeClient | null = null;
  private networkClient: NetworkClient | null = null;
  private identity: Identity | null = null;
  /** the token request of this cloud (worked out by open()) */
  private keystone: KeystoneAuth | null = null;
  /** how HTTPS is verified (worked out by open()) */
  tls: CloudTls | null = null;
  private authPromise: Promise<void> | null = null;
  /** while authenticate() points the pkgcloud clients at the new catalog */
  private resolvingClients = false;
  /** the token the clients' service URLs were last resolved with */
  private authedToken: string | null = null;
  private readonly agent: http.Agent;
  private httpsAgent: https.Agent;
  /** the agents pkgcloud's `request` creates for this session (with our CA), by request's pool key */
  private readonly requestPool: Record<string, http.Agent> = {};
  private readonly inflight = new Set<http.ClientRequest>();
  private closed = false;

  constructor(opts: SessionOptions) {
    this.provider = opts.provider;
    this.cloud = opts.cloud;
    this.region = opts.region;
    this.limiter = opts.limiter;
    this.apiTimeoutMs = opts.apiTimeoutMs ?? DEFAULT_API_TIMEOUT_MS;
    this.onApiCall = opts.onApiCall;
    const secret = authSecret(opts.cloud);
    if (secret) this.secrets.add(secret);
    if (opts.cloud.password) this.secrets.add(opts.cloud.password);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 32 });
  }

  /**
   * Works out the token request and the TLS settings (reading `cacert`) and creates the pkgcloud
   * clients; makes no API call (credentials are checked on first use). A clouds.yaml entry that
   * cannot work (no auth_url, a credential missing, an unreadable CA bundle) is a fatal
   * ProviderError naming the cloud and its file.
   */
  async open(): Promise<void> {
    if (this.computeClient) return;
    const pkgcloud = await loadPkgcloud();
    let options: OpenStackClientOptions;
    try {
      options = clientOptions(this.cloud, this.region);
      this.keystone = keystoneAuth(this.cloud);
      this.tls = cloudTls(this.cloud);
    } catch (err) {
      throw new ProviderError(this.provider, 'fatal', redact((err as Error).message, this.secrets), { operation: 'start' });
    }
    const tls = this.tls;
    this.httpsAgent.destroy();
    this.httpsAgent = new https.Agent({
      keepAlive: true, maxSockets: 32, rejectUnauthorized: tls.verify, ...(tls.ca !== null ? { ca: tls.ca } : {}),
    });
    const compute = pkgcloud.providers.openstack.compute.createClient(options);
    const identity = compute._identity;
    // One identity (one token) for every client; `new` on a function returning an object
    // yields that object, which is how pkgcloud's `identity` option can share an instance.
    const shared = function sharedIdentity(): Identity { return identity; } as unknown as new (o: Record<string, unknown>) => Identity;
    const network = pkgcloud.providers.openstack.network.createClient({ ...options, identity: shared });
    // pkgcloud authorizes inline when it thinks the token is stale; route that through ours so
    // concurrent calls share one token request and it is rate limited and counted.
    identity.authorize = (o: Record<string, unknown> | Callback<void>, cb?: (err: PkgcloudHttpError | null) => void) => {
      const callback = typeof o === 'function' ? o as (err: PkgcloudHttpError | null) => void : cb;
      if (this.tokenValid() || this.resolvingClients) {
        process.nextTick(() => callback?.(null));
        return;
      }
      this.ensureAuth('authorize').then(() => callback?.(null), (err: unknown) => callback?.(err as PkgcloudHttpError));
    };
    if (tls.ca !== null || !tls.verify) {
      // pkgcloud's calls go through `request`, which takes a CA per call and keeps the agents it
      // makes for it in the `pool` it is given: a hook of each client (run before every request)
      // gives it ours, so this cloud's CA is trusted by this session's calls only.
      for (const client of [compute, network]) {
        client.before ??= [];
        client.before.push((req: Record<string, unknown>) => {
          if (tls.ca !== null) req.ca = tls.ca;
          req.strictSSL = tls.verify;
          req.pool = this.requestPool;
          req.agentOptions = { keepAlive: true, maxSockets: 32 };
          return req;
        });
      }
    }
    this.computeClient = compute;
    this.networkClient = network;
    this.identity = identity;
  }

  close(): void {
    this.closed = true;
    for (const r of this.inflight) r.destroy();
    this.inflight.clear();
    this.agent.destroy();
    this.httpsAgent.destroy();
    for (const a of Object.values(this.requestPool)) a.destroy();
  }

  private ctx(operation: string, call: string, url?: string): ErrorContext {
    return { provider: this.provider, cloud: this.cloud.name, operation, call, secrets: this.secrets, ...(url ? { url } : {}) };
  }

  /**
   * A token that is not about to expire: renewed 30 s before its end (keystoneauth's stale
   * window), or half way through its life when it lives less than a minute.
   */
  private tokenValid(): boolean {
    const t = this.identity?.token;
    if (!t || !t.id || !(t.expires instanceof Date)) return false;
    const issued = t.issued_at instanceof Date ? t.issued_at.getTime() : Number.NaN;
    const margin = Number.isFinite(issued) ? Math.min(EARLY_TOKEN_MS, (t.expires.getTime() - issued) / 2) : EARLY_TOKEN_MS;
    return t.expires.getTime() - Date.now() > margin;
  }

  /** Forget the token (after a 401): the next call authenticates again. */
  invalidateToken(): void {
    if (this.identity) this.identity.token = null;
    this.authedToken = null;
  }

  /** A valid token with every client's endpoint resolved; one Keystone call for all waiters. */
  async ensureAuth(operation: string): Promise<void> {
    if (this.tokenValid() && this.authedToken !== null && this.authedToken === this.identity?.token?.id) return;
    this.authPromise ??= this.authenticate(operation).finally(() => { this.authPromise = null; });
    return this.authPromise;
  }

  private async authenticate(operation: string): Promise<void> {
    const identity = this.identity;
    if (!identity || this.closed) throw new ProviderAbortedError(this.provider, operation);
    if (!this.tokenValid()) await this.limiter.run(() => this.requestToken(identity, operation), { operation });
    const token = identity.token;
    if (!token?.id) throw new ProviderError(this.provider, 'fatal', `cloud ${this.cloud.name}: Keystone returned no token`, { operation });
    if (this.region === null) this.region = this.catalogRegion();
    this.resolvingClients = true;
    try {
      for (const client of [this.computeClient, this.networkClient]) {
        if (!client) continue;
        if (this.region !== null) client.region = this.region;
        try {
          await new Promise<void>((resolve, reject) => client.auth((err) => (err ? reject(err) : resolve())));
        } catch (err) {
          throw new ProviderError(this.provider, 'fatal', redact(
            `cloud ${this.cloud.name}: the service catalog has no ${client === this.computeClient ? 'compute' : 'network'} endpoint${this.region ? ` in region ${this.region}` : ''} (${(err as Error).message})`,
            this.secrets), { operation });
        }
      }
    } finally {
      this.resolvingClients = false;
    }
    this.authedToken = token.id;
  }

  /**
   * `POST /v3/auth/tokens` with this cloud's credential (password or application credential),
   * over this session's agents (so `cacert`/`verify` apply to Keystone too). The answer — token,
   * expiry, project, catalog — is handed to pkgcloud's identity, which its clients read.
   */
  private async requestToken(identity: Identity, operation: string): Promise<void> {
    const keystone = this.keystone;
    if (!keystone) throw new ProviderAbortedError(this.provider, operation);
    const authUrl = keystoneBase(this.cloud.authUrl ?? '');
    const url = new URL(`${authUrl}/v3/auth/tokens`);
    const call = `identity POST ${url.href}`;
    const result = await this.send('identity', 'POST', url, call,
      { operation, name: 'tokens', json: keystone.body, anonymous: true });
    if (result.status === 401 && keystone.method === 'application_credential') {
      const said = errorMessage(result.body);
      throw new ProviderError(this.provider, 'fatal', redact(
        `cloud ${this.cloud.name}: authentication failed for ${keystone.describe} at ${this.cloud.authUrl ?? authUrl} `
        + `(${call}: HTTP 401${said ? `: ${said}` : ''}); check its application_credential_id/name and `
        + `application_credential_secret in ${this.cloud.file}, and that it has not expired or been deleted`,
        this.secrets), { operation });
    }
    if (result.status < 200 || result.status >= 300) {
      throw httpError(this.ctx(operation, call, url.href), { status: result.status, body: result.body });
    }
    const subject = result.headers['x-subject-token'];
    const tokenId = Array.isArray(subject) ? subject[0] : subject;
    const body = result.body as { token?: { project?: { id?: unknown } } } | null;
    if (!tokenId || body === null || typeof body !== 'object' || !body.token) {
      throw new ProviderError(this.provider, 'fatal', `cloud ${this.cloud.name}: Keystone returned no token (${call}: HTTP ${result.status})`, { operation });
    }
    this.secrets.add(tokenId);
    if (!body.token.project?.id) {
      throw new ProviderError(this.provider, 'fatal',
        `cloud ${this.cloud.name}: the token Keystone issued for ${keystone.describe} is not scoped to a project; `
        + `set auth.project_name or auth.project_id in ${this.cloud.file}`, { operation });
    }
    const times = body.token as { expires_at?: unknown; issued_at?: unknown };
    const expires = keystoneTime(times.expires_at);
    if (expires === null) {
      throw new ProviderError(this.provider, 'fatal', `cloud ${this.cloud.name}: Keystone's token has no valid expires_at (${call})`, { operation });
    }
    try {
      identity._parseIdentityResponse(body, { 'x-subject-token': tokenId });
    } catch (err) {
      throw new ProviderError(this.provider, 'fatal', redact(
        `cloud ${this.cloud.name}: cannot read Keystone's token answer (${call}): ${(err as Error).message}`, this.secrets), { operation });
    }
    if (identity.token) {
      identity.token.expires = expires;
      const issued = keystoneTime(times.issued_at);
      if (issued !== null) identity.token.issued_at = issued;
    }
  }

  /** First region of the catalog's compute endpoints, for clouds.yaml entries naming none. */
  private catalogRegion(): string | null {
    const services = this.identity?.serviceCatalog?.services ?? {};
    for (const s of Object.values(services)) {
      if (s.type !== 'compute') continue;
      const r = s.endpoints?.find((e) => e.region)?.region;
      if (r) return r;
    }
    return null;
  }

  /** The catalog URL of a service (public interface unless clouds.yaml says `interface: internal`). */
  endpoint(service: ServiceType, operation: string): string {
    if (!this.identity) throw new ProviderAbortedError(this.provider, operation);
    try {
      return this.identity.getServiceEndpointUrl({
        serviceType: service, ...(this.region ? { region: this.region } : {}),
        useInternal: this.cloud.raw.interface === 'internal',
      }).replace(/\/+$/, '');
    } catch {
      throw new ProviderError(this.provider, 'fatal',
        `cloud ${this.cloud.name}: the service catalog has no ${service} endpoint${this.region ? ` in region ${this.region}` : ''}`,
        { operation });
    }
  }

  /** The catalog URL of a service, or undefined (for naming the endpoint in TLS failures). */
  private endpointUrl(service: ServiceType): string | undefined {
    try {
      return this.identity?.serviceCatalog ? this.endpoint(service, 'describe') : undefined;
    } catch {
      return undefined;
    }
  }

  /** The project the token is scoped to. */
  projectId(): string | null {
    return this.identity?.token?.tenant?.id ?? null;
  }

  get compute(): ComputeClient {
    if (!this.computeClient) throw new ProviderError(this.provider, 'fatal', 'session not opened');
    return this.computeClient;
  }

  get network(): NetworkClient {
    if (!this.networkClient) throw new ProviderError(this.provider, 'fatal', 'session not opened');
    return this.networkClient;
  }

  private report(service: ServiceType, method: string, name: string, status: number | null, started: number): void {
    this.onApiCall?.({ provider: this.provider, service, method, name, status, ms: Date.now() - started });
  }

  /**
   * Runs one callback-style pkgcloud call under the limiter with a timeout, re-authenticating
   * once on a 401 (a revoked or expired token).
   */
  async pk<T>(service: ServiceType, method: string, name: string, operation: string, call: string,
    fn: (cb: Callback<T>) => Abortable | undefined, signal?: AbortSignal): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      await this.ensureAuth(operation);
      try {
        return await this.limiter.run(() => this.callback(service, method, name, operation, call, fn, signal),
          signal ? { operation, signal } : { operation });
      } catch (err) {
        if (attempt === 1 && err instanceof ProviderError && /HTTP 401/.test(err.message)) {
          this.invalidateToken();
          continue;
        }
        throw err;
      }
    }
  }

  private callback<T>(service: ServiceType, method: string, name: string, operation: string, call: string,
    fn: (cb: Callback<T>) => Abortable | undefined, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const started = Date.now();
      let settled = false;
      let req: Abortable | undefined;
      const finish = (status: number | null, err: ProviderError | null, value?: T): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.report(service, method, name, status, started);
        if (err) reject(err);
        else resolve(value as T);
      };
      const onAbort = (): void => {
        req?.abort?.();
        finish(null, new ProviderAbortedError(this.provider, operation));
      };
      const timer = setTimeout(() => {
        req?.abort?.();
        finish(null, new ProviderTimeoutError(this.provider, `${call} (cloud ${this.cloud.name})`, this.apiTimeoutMs, { operation }));
      }, this.apiTimeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        req = fn((err, value) => {
          if (err) {
            const status = typeof err.statusCode === 'number' ? err.statusCode : null;
            finish(status, status !== null
              ? httpError(this.ctx(operation, call), { status, body: err.result })
              : transportError(this.ctx(operation, call, this.endpointUrl(service)), err));
          } else {
            finish(successStatus(service, method), null, value);
          }
        });
      } catch (err) {
        finish(null, transportError(this.ctx(operation, call), err));
      }
    });
  }

  /**
   * One HTTP call of our own modules: `path` is below the service's catalog URL. Answers with
   * a status outside 2xx become classified ProviderErrors; 401 re-authenticates once.
   */
  async http(service: ServiceType, method: string, path: string, opts: HttpCall): Promise<HttpResult> {
    for (let attempt = 1; ; attempt++) {
      await this.ensureAuth(opts.operation);
      const base = this.endpoint(service, opts.operation);
      const url = new URL(base + path);
      for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
      const call = `${service} ${method} ${url.pathname}`;
      const result = await this.limiter.run(() => this.send(service, method, url, call, opts),
        opts.signal ? { operation: opts.operation, signal: opts.signal } : { operation: opts.operation });
      if (result.status === 401 && attempt === 1 && !opts.stream) {
        this.invalidateToken();
        continue;
      }
      if (result.status < 200 || result.status >= 300) {
        throw httpError(this.ctx(opts.operation, call), { status: result.status, body: result.body });
      }
      return result;
    }
  }

  private send(service: ServiceType, method: string, url: URL, call: string, opts: HttpCall): Promise<HttpResult> {
    return new Promise<HttpResult>((resolve, reject) => {
      if (this.closed) {
        reject(new ProviderAbortedError(this.provider, opts.operation));
        return;
      }
      const started = Date.now();
      const headers: Record<string, string> = {
        Accept: 'application/json',
        'User-Agent': 'nodepool-ts',
        ...(opts.anonymous ? {} : { 'X-Auth-Token': this.identity?.token?.id ?? '' }),
        ...(opts.headers ?? {}),
      };
      let payload: Buffer | null = null;
      if (opts.json !== undefined) {
        payload = Buffer.from(JSON.stringify(opts.json));
        headers['Content-Type'] ??= 'application/json';
        headers['Content-Length'] = String(payload.length);
      } else if (opts.stream) {
        headers['Content-Type'] ??= 'application/octet-stream';
        if (opts.contentLength !== undefined) headers['Content-Length'] = String(opts.contentLength);
      }
      const lib = url.protocol === 'https:' ? https : http;
      const target = `${url.origin}${url.pathname}`;
      let settled = false;
      const finish = (status: number | null, err: ProviderError | null, result?: HttpResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        this.inflight.delete(req);
        this.report(service, method, opts.name, status, started);
        if (err) reject(err);
        else if (result) resolve(result);
      };
      const req = lib.request(url, { method, headers, agent: url.protocol === 'https:' ? this.httpsAgent : this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => finish(null, transportError(this.ctx(opts.operation, call, target), err)));
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          let body: unknown = raw;
          if (String(res.headers['content-type'] ?? '').includes('json') && raw !== '') {
            try { body = JSON.parse(raw); } catch { body = raw; }
          }
          finish(res.statusCode ?? 0, null, { status: res.statusCode ?? 0, headers: res.headers, body });
        });
      });
      this.inflight.add(req);
      const timeoutMs = opts.timeoutMs ?? this.apiTimeoutMs;
      const onTimeout = (): void => {
        req.destroy();
        finish(null, new ProviderTimeoutError(this.provider, `${call} (cloud ${this.cloud.name})`, timeoutMs, { operation: opts.operation }));
      };
      // Uploads may take hours: for them the limit is on silence, not on the whole call.
      const timer = opts.stream ? undefined : setTimeout(onTimeout, timeoutMs);
      if (opts.stream) req.setTimeout(timeoutMs, onTimeout);
      const onAbort = (): void => {
        req.destroy();
        finish(null, new ProviderAbortedError(this.provider, opts.operation));
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err) => finish(null, this.closed
        ? new ProviderAbortedError(this.provider, opts.operation)
        : transportError(this.ctx(opts.operation, call, target), err)));
      if (payload) {
        req.end(payload);
      } else if (opts.stream) {
        opts.stream.on('error', (err) => {
          req.destroy();
          finish(null, new ProviderError(this.provider, 'fatal', `cannot read upload data: ${err.message}`, { operation: opts.operation }));
        });
        opts.stream.pipe(req);
      } else {
        req.end();
      }
    });
  }
}
