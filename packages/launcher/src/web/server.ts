// The launcher's web app (Fastify): Nodepool's read-only API, the lease API, the dashboard, the
// OpenAPI document and Prometheus /metrics. It listens on 127.0.0.1 unless `webapp.listen_address`
// says otherwise. The lease side needs the database; while that is unreachable the read-only
// endpoints keep working and the lease endpoints answer 503 (the database is retried every 30 s).
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { fastify, LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Config } from '@nodepool-ts/core/config';
import type { Database } from '@nodepool-ts/core/db';
import type { Logger } from '@nodepool-ts/core/log';
import type { LauncherInfo } from '@nodepool-ts/core/model';
import { VERSION } from '../version.js';
import { Dashboard } from './dashboard.js';
import { openWebDatabase, migrateWeb } from './db.js';
import { ApiError } from './errors.js';
import { Authenticator } from './auth.js';
import { LeaseApi, API_PREFIX } from './lease-api.js';
import { DEFAULT_LEASE_LIMITS, LeaseManager, LeaseStore, OPEN_STATES, type LeaseHost, type LeaseLimits } from './leases.js';
import type { LauncherMetrics, MetricsHost } from './metrics.js';
import { NodepoolApi } from './nodepool-api.js';
import { openApiDocument } from './openapi.js';
import { StaticHostApi } from './static-host-api.js';
import { TokenStore } from './tokens.js';

export interface WebAppOptions {
  /** override `webapp.port` (0 = any free port, for tests) */
  port?: number;
  /** override `webapp.listen_address` */
  listenAddress?: string;
  /** override the lease limits (`webapp.leases` in nodepool.yaml sets them for operators) */
  leaseLimits?: Partial<LeaseLimits>;
  /** share an open database instead of opening the configured one (its tables get migrated) */
  database?: Database;
  /** seconds the Nodepool listings are cached (Nodepool: 1) */
  cacheSeconds?: number;
  /** minimum spacing of dashboard pushes */
  dashboardPushMs?: number;
  /** how often an unreachable database is tried again */
  databaseRetryMs?: number;
}

/** What the web app needs from the launcher (the Launcher class provides all of it). */
export interface WebAppHost extends LeaseHost, MetricsHost {
  readonly config: Config;
  logger(name: string): Logger;
  /** union of labels of every provider in this launcher's config */
  supportedLabels(): string[];
}

const LAUNCHERS_CACHE_MS = 2000;

export class WebApp {
  private app: FastifyInstance | null = null;
  private db: Database | null = null;
  private ownsDb = false;
  private tokenStore: TokenStore | null = null;
  private leaseManager: LeaseManager | null = null;
  private dashboard: Dashboard | null = null;
  private dbTimer: NodeJS.Timeout | null = null;
  private dbOpening: Promise<void> | null = null;
  private stopping = false;
  private boundPort = 0;
  private launchersSeen: { at: number; list: LauncherInfo[] } | null = null;
  readonly limits: LeaseLimits;
  private readonly log: Logger;

  constructor(private readonly host: WebAppHost, private readonly metrics: LauncherMetrics | null, private readonly opts: WebAppOptions = {}) {
    // (read once at start: a changed `webapp.leases` takes effect when the launcher restarts)
    this.limits = { ...DEFAULT_LEASE_LIMITS, ...host.config.webapp.leases, ...opts.leaseLimits };
    this.log = host.logger('nodepool.WebApp');
  }

  /** The port it listens on (after start). */
  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    const host = this.opts.listenAddress ?? this.host.config.webapp.listenAddress;
    const h = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    return `http://${h}:${this.boundPort}`;
  }

  get leases(): LeaseManager | null {
    return this.leaseManager;
  }

  get tokens(): TokenStore | null {
    return this.tokenStore;
  }

  isReady(): boolean {
    return !this.stopping && this.app !== null && this.host.zk.state === 'connected';
  }

  async start(): Promise<void> {
    await this.openDb();
    const app = fastify({
      loggerInstance: this.log as FastifyBaseLogger,
      // our onResponse hook logs one line per request instead (never headers: they carry tokens)
      logController: new LogController({ disableRequestLogging: true }),
      genReqId: () => randomBytes(6).toString('hex'),
      bodyLimit: 16 * 1024,
      forceCloseConnections: true,
      return503OnClosing: true,
    });
    this.app = app;
    // only JSON bodies: Fastify would otherwise hand text/plain to the handlers as a string
    app.removeContentTypeParser('text/plain');
    this.installHooks(app);

    new NodepoolApi({ zk: this.host.zk, isReady: () => this.isReady() }, this.opts.cacheSeconds ?? 1).register(app);
    // one rate limit per token across the lease and static-host endpoints
    const auth = new Authenticator(() => this.tokenStore, this.limits);
    new LeaseApi({
      leases: () => this.leaseManager,
      knownLabels: () => this.knownLabels(),
    }, auth, this.limits, this.host.logger('nodepool.LeaseApi')).register(app);
    new StaticHostApi({
      zk: this.host.zk,
      config: () => this.host.config,
      nodes: () => this.host.nodeCache.all(),
    }, auth, this.host.logger('nodepool.StaticHostApi')).register(app);
    const host = this.host;
    const dashboard = new Dashboard({
      hostname: host.hostname,
      get config() { return host.config; },
      nodeCache: this.host.nodeCache,
      requestCache: this.host.requestCache,
      events: this.host.events,
      zkState: () => this.host.zk.state,
      isReady: () => this.isReady(),
      statsLeader: () => this.metrics?.isLeader ?? false,
      statsd: () => this.metrics?.statsdEnabled ?? false,
      knex: () => this.db?.knex ?? null,
      openLeases: async () => (this.leaseManager ? this.leaseManager.store.list({ states: OPEN_STATES }) : []),
      circuitStates: () => this.host.circuitStates?.() ?? new Map(),
    }, this.host.logger('nodepool.Dashboard'), this.opts.dashboardPushMs ?? 250);
    this.dashboard = dashboard;
    dashboard.register(app);
    dashboard.start();
    if (this.leaseManager) this.leaseManager.onChange = () => dashboard.changed();

    const doc = openApiDocument(this.limits, VERSION);
    app.get(`${API_PREFIX}/openapi.json`, async () => doc);
    app.get('/openapi.json', async () => doc);
    app.get('/metrics', async (_req, reply) => {
      if (!this.metrics) throw new ApiError(404, 'not_found', 'metrics are not enabled');
      const { contentType, body } = await this.metrics.prometheus();
      return reply.type(contentType).header('Cache-Control', 'no-cache').send(body);
    });

    const port = this.opts.port ?? this.host.config.webapp.port;
    const address = this.opts.listenAddress ?? this.host.config.webapp.listenAddress;
    await app.listen({ port, host: address });
    this.boundPort = (app.server.address() as AddressInfo).port;
    this.log.info({ url: this.url }, `Web API and dashboard listening on ${this.url}`);
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.dbTimer) clearTimeout(this.dbTimer);
    await this.dbOpening?.catch(() => undefined);
    this.dashboard?.stop();
    await this.app?.close().catch(() => undefined);
    await this.leaseManager?.stop();
    if (this.db && this.ownsDb) await this.db.close().catch(() => undefined);
    this.db = null;
  }

  private installHooks(app: FastifyInstance): void {
    app.addHook('onSend', async (_req, reply, payload) => {
      reply.header('X-Content-Type-Options', 'nosniff');
      reply.header('X-Frame-Options', 'DENY');
      reply.header('Referrer-Policy', 'no-referrer');
      return payload;
    });
    // one line per request, with its id; never headers (they carry tokens) nor bodies
    app.addHook('onResponse', async (req, reply) => {
      const line = { reqId: req.id, method: req.method, url: req.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime) };
      if (req.method === 'GET' || req.method === 'HEAD') this.log.debug(line, 'request');
      else this.log.info(line, 'request');
    });
    app.setNotFoundHandler(async (req, reply) => {
      const path = req.url.split('?')[0] ?? '';
      return reply.code(404).send({ code: 'not_found', message: `no such endpoint: ${req.method} ${path}` });
    });
    app.setErrorHandler(async (err: FastifyError | ApiError, req, reply) => {
      if (err instanceof ApiError) {
        if (err.retryAfter !== null) reply.header('Retry-After', String(err.retryAfter));
        if (err.status === 401) reply.header('WWW-Authenticate', 'Bearer');
        for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
        return reply.code(err.status).send(err.toJSON());
      }
      const code = err.code;
      if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
        return reply.code(415).send({ code: 'unsupported_media_type', message: 'send the body as application/json' });
      }
      if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        return reply.code(413).send({ code: 'body_too_large', message: 'the body is larger than 16 KiB' });
      }
      if (code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) {
        return reply.code(400).send({ code: 'invalid_body', message: 'the body is not valid JSON' });
      }
      const status = err.statusCode ?? 500;
      if (status < 500) return reply.code(status).send({ code: 'invalid_body', message: err.message });
      req.log.error({ reqId: req.id, err: err.message }, `request failed: ${err.message}`);
      return reply.code(500).send({ code: 'internal_error', message: `internal error; the launcher log has the details (request ${req.id})` });
    });
  }

  /** Labels a lease may ask for: offered by this launcher or any registered one. */
  private async knownLabels(): Promise<Set<string>> {
    const out = new Set(this.host.supportedLabels());
    if (!this.launchersSeen || Date.now() - this.launchersSeen.at > LAUNCHERS_CACHE_MS) {
      try {
        this.launchersSeen = { at: Date.now(), list: await this.host.zk.getLauncherPools() };
      } catch {
        // ZooKeeper away: this launcher's own labels still count
      }
    }
    for (const l of this.launchersSeen?.list ?? []) for (const label of l.supported_labels) out.add(label);
    return out;
  }

  private async openDb(): Promise<void> {
    this.dbOpening = (async () => {
      try {
        if (this.opts.database) {
          await migrateWeb(this.opts.database.knex);
          this.db = this.opts.database;
        } else {
          this.db = await openWebDatabase(this.host.config);
          this.ownsDb = true;
        }
      } catch (err) {
        if (this.stopping) return;
        this.log.error({ err: (err as Error).message },
          `Leases and tokens are unavailable until the database answers: ${(err as Error).message}`);
        this.dbTimer = setTimeout(() => void this.openDb(), this.opts.databaseRetryMs ?? 30_000);
        this.dbTimer.unref();
        return;
      }
      if (this.stopping) return;
      this.tokenStore = new TokenStore(this.db.knex);
      const mgr = new LeaseManager(this.host, new LeaseStore(this.db.knex), this.limits, this.host.logger('nodepool.LeaseManager'));
      mgr.start();
      mgr.onChange = () => this.dashboard?.changed();
      this.leaseManager = mgr;
    })().finally(() => {
      this.dbOpening = null;
    });
    return this.dbOpening;
  }
}
