// Runtime static hosts over HTTP (beyond Nodepool; Cloudify Host-pool's add/list/remove hosts):
// `GET /api/v1/static-hosts` lists configured and runtime hosts with their registered slots
// (what `nodepool static-host list --json` prints), `POST` adds a host to a configured static
// pool and `DELETE /api/v1/static-hosts/{name}` removes one. The hosts are kept in ZooKeeper by
// the static driver's StaticHostStore, the same store the CLI uses, and every launcher serving
// the provider registers them after its alive check. Changing needs a token with scope `hosts`.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Config } from '@nodepool-ts/core/config';
import type { Logger } from '@nodepool-ts/core/log';
import type { Node } from '@nodepool-ts/core/model';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import {
  CONNECTION_TYPES, StaticDriverError, StaticHostStore, StaticHostValidationError, runtimeHostView, staticHostRows,
  type RuntimeHostInput,
} from '@nodepool-ts/driver-static';
import type { Authenticator } from './auth.js';
import { ApiError, UnavailableError } from './errors.js';
import { API_PREFIX, zodMessage } from './lease-api.js';

const text = (max: number) => z.string().min(1).max(max);

/** Body of POST /api/v1/static-hosts: nodepool.yaml's key names (also the OpenAPI schema). */
export const staticHostCreateSchema = z.object({
  provider: text(255).describe('a static provider of nodepool.yaml'),
  pool: text(255).optional().describe('a pool of that provider; may be left out when it has only one'),
  name: text(255).describe('DNS name or IP address of the host (unique across static providers)'),
  labels: z.union([z.array(text(191)), text(4096)])
    .describe('labels the host offers (a list, or a whitespace separated string as in nodepool.yaml); the pool must offer them'),
  username: text(255).optional().describe('default zuul'),
  timeout: z.number().int().optional().describe('seconds for the alive check\'s connection (default 5)'),
  'host-key': z.union([z.array(text(16384)), text(16384)]).optional()
    .describe('expected SSH host keys, "<type> <base64>"; none = whatever the host offers'),
  'connection-port': z.number().int().optional().describe('default 22'),
  'connection-type': z.enum(CONNECTION_TYPES as [string, ...string[]]).optional().describe('default ssh'),
  'max-parallel-jobs': z.number().int().optional().describe('nodes registered for the host at once (default 1)'),
  os: z.string().max(255).nullable().optional().describe('Host-pool\'s operating system tag (free text), a list filter'),
  tags: z.array(text(255)).optional().describe('free tags, a list filter (every tag asked for must be present)'),
}).strict();

const hostRowView = z.object({
  name: z.string(),
  provider: z.string(),
  pool: z.string(),
  labels: z.array(z.string()),
  username: z.string(),
  port: z.number().int(),
  connection_type: z.string(),
  max_parallel_jobs: z.number().int(),
  os: z.string().nullable(),
  tags: z.array(z.string()),
  source: z.enum(['config', 'runtime']).describe('nodepool.yaml, or added at runtime (CLI or this API)'),
  registered: z.number().int().describe('nodes the launchers registered for the host (one per parallel job)'),
  ready: z.number().int().describe('of those, ready and not allocated'),
});

export const staticHostRowView = hostRowView;

export const runtimeHostResponseView = hostRowView.extend({
  timeout: z.number().int(),
  host_key: z.array(z.string()),
  added_time: z.number().describe('Unix seconds'),
  added_by: z.string().nullable().describe('the token name for hosts added over HTTP'),
});

export interface StaticHostApiHost {
  readonly zk: ZooKeeper;
  /** the launcher's current configuration (it follows reloads) */
  config(): Config;
  /** the nodes as the launcher's cache has them, to count each host's slots */
  nodes(): readonly Readonly<Node>[];
}

function queryList(v: unknown): string[] {
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string' && x !== '');
  return typeof v === 'string' && v !== '' ? [v] : [];
}

function queryOne(v: unknown, name: string): string | null {
  const list = queryList(v);
  if (list.length > 1) throw new ApiError(400, 'invalid_body', `${name}: give it once`, { issues: [{ path: name, message: 'give it once' }] });
  return list[0] ?? null;
}

export class StaticHostApi {
  private readonly store: StaticHostStore;

  constructor(private readonly host: StaticHostApiHost, private readonly auth: Authenticator, private readonly log: Logger) {
    this.store = new StaticHostStore(host.zk);
  }

  private connected(): void {
    if (this.host.zk.state !== 'connected') {
      throw new UnavailableError('zookeeper_unavailable', 'static hosts are unavailable: the launcher is not connected to ZooKeeper');
    }
  }

  /** The driver's errors as API errors (4xx); anything else goes on to the 500 handler. */
  private apiError(err: unknown): unknown {
    if (err instanceof StaticHostValidationError) {
      const issues = err.issues.map((i) => ({ path: i.field, message: i.message }));
      return new ApiError(400, 'invalid_body', issues.map((i) => `${i.path}: ${i.message}`).join('; '), { issues });
    }
    if (err instanceof StaticDriverError && err.code === 'EHOSTEXISTS') return new ApiError(409, 'host_exists', err.message, err.context);
    if (err instanceof StaticDriverError && err.code === 'ENOHOST') return new ApiError(404, 'host_not_found', err.message, err.context);
    return err;
  }

  register(app: FastifyInstance): void {
    app.get(`${API_PREFIX}/static-hosts`, async (req) => {
      const q = req.query as Record<string, unknown>;
      const filter = { provider: queryOne(q.provider, 'provider'), os: queryOne(q.os, 'os'), tags: queryList(q.tag) };
      this.connected();
      return staticHostRows(this.host.config(), await this.store.list(filter.provider), this.host.nodes(), filter);
    });

    app.post(`${API_PREFIX}/static-hosts`, async (req, reply) => {
      const token = await this.auth.authenticate(req, 'hosts');
      const r = staticHostCreateSchema.safeParse(req.body ?? {});
      if (!r.success) {
        const { message, issues } = zodMessage(r.error);
        throw new ApiError(400, 'invalid_body', message, { issues });
      }
      const b = r.data;
      const input: RuntimeHostInput = { provider: b.provider, pool: b.pool ?? null, name: b.name, labels: b.labels, os: b.os ?? null, addedBy: token.name };
      if (b.username !== undefined) input.username = b.username;
      if (b.timeout !== undefined) input.timeout = b.timeout;
      if (b['host-key'] !== undefined) input.hostKey = b['host-key'];
      if (b['connection-port'] !== undefined) input.connectionPort = b['connection-port'];
      if (b['connection-type'] !== undefined) input.connectionType = b['connection-type'];
      if (b['max-parallel-jobs'] !== undefined) input.maxParallelJobs = b['max-parallel-jobs'];
      if (b.tags !== undefined) input.tags = b.tags;
      this.connected();
      let added;
      try {
        added = await this.store.add(this.host.config(), input);
      } catch (err) {
        throw this.apiError(err);
      }
      this.log.info({ host: added.name, provider: added.provider, pool: added.pool, token: token.name },
        `Static host ${added.name} added to provider ${added.provider} pool ${added.pool} by token ${token.name}`);
      return reply.code(201).send(runtimeHostView(added, this.host.nodes()));
    });

    app.delete(`${API_PREFIX}/static-hosts/:name`, async (req) => {
      const token = await this.auth.authenticate(req, 'hosts');
      const { name } = req.params as { name: string };
      const provider = queryOne((req.query as Record<string, unknown>).provider, 'provider');
      this.connected();
      let removed;
      try {
        removed = await this.store.remove(name, provider);
      } catch (err) {
        throw this.apiError(err);
      }
      this.log.info({ host: removed.name, provider: removed.provider, token: token.name },
        `Static host ${removed.name} removed from provider ${removed.provider} by token ${token.name}`);
      return runtimeHostView(removed, this.host.nodes());
    });
  }
}
