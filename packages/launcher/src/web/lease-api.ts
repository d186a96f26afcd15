// The lease API (beyond Nodepool): `POST /api/v1/leases` {labels: {label: count}, ttl, wait}
// → a real node request; `GET` a lease (nodes, addresses, username, expiry); `PATCH` its ttl;
// `DELETE` it to give the nodes back. Reading is open like the rest of the web API; every
// mutation needs a token (`Authorization: Bearer np_...` or `X-Auth-Token`), is rate limited per
// token and bounded by the nodes a token may hold.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Logger } from '@nodepool-ts/core/log';
import { ApiError, UnavailableError } from './errors.js';
import type { Lease, LeaseLimits, LeaseManager, LeaseState } from './leases.js';
import type { Authenticator } from './auth.js';
import type { TokenInfo } from './tokens.js';

export const API_PREFIX = '/api/v1';

/** Body of POST /api/v1/leases (also the OpenAPI schema). */
export function leaseCreateSchema(limits: LeaseLimits) {
  return z.object({
    labels: z.record(
      z.string().min(1).max(191).regex(/^[^\s/,]+$/, 'a label name has no spaces, "/" or ","'),
      z.number().int().min(1).max(limits.maxNodesPerLease),
    ).describe('nodes wanted per label, e.g. {"ubuntu-jammy": 2}'),
    ttl: z.number().int().min(limits.minTtl).max(limits.maxTtl).optional()
      .describe(`lifetime in seconds once the nodes are delivered (default ${limits.defaultTtl})`),
    wait: z.number().int().min(0).max(limits.maxWait).optional()
      .describe('seconds to wait for the nodes before answering 202 with a pending lease (default 0)'),
    comment: z.string().max(255).optional().describe('free text, shown in lease listings'),
  }).strict().superRefine((v, ctx) => {
    const total = Object.values(v.labels).reduce((a, b) => a + b, 0);
    if (total === 0) ctx.addIssue({ code: 'custom', path: ['labels'], message: 'ask for at least one node' });
    if (total > limits.maxNodesPerLease) {
      ctx.addIssue({ code: 'custom', path: ['labels'], message: `at most ${limits.maxNodesPerLease} nodes per lease (asked for ${total})` });
    }
  });
}

export function leaseExtendSchema(limits: LeaseLimits) {
  return z.object({
    ttl: z.number().int().min(limits.minTtl).max(limits.maxTtl).describe('new lifetime in seconds, counted from now'),
  }).strict();
}

const leaseNodeView = z.object({
  id: z.string(),
  label: z.string().nullable(),
  state: z.string().nullable(),
  provider: z.string().nullable(),
  az: z.string().nullable(),
  hostname: z.string().nullable(),
  interface_ip: z.string().nullable().describe('the address to connect to'),
  public_ipv4: z.string().nullable(),
  private_ipv4: z.string().nullable(),
  public_ipv6: z.string().nullable(),
  username: z.string().nullable(),
  connection_type: z.string().nullable(),
  connection_port: z.number().int().nullable(),
  host_keys: z.array(z.string()).describe('SSH host keys as "<type> <base64>", for known_hosts'),
});

export const leaseView = z.object({
  id: z.string(),
  state: z.enum(['pending', 'active', 'releasing', 'returned', 'expired', 'cancelled', 'failed', 'lost']),
  labels: z.record(z.string(), z.number().int()),
  node_count: z.number().int(),
  request_id: z.string().nullable(),
  nodes: z.array(leaseNodeView),
  token: z.string().describe('name of the token that created the lease'),
  owner: z.string().describe('launcher holding the node locks'),
  ttl: z.number().int(),
  comment: z.string().nullable(),
  created_at: z.string().describe('ISO 8601'),
  fulfilled_at: z.string().nullable(),
  expires_at: z.string(),
  expires_in: z.number().int().nullable().describe('seconds left; null once the lease ended'),
  ended_at: z.string().nullable(),
  error: z.string().nullable(),
});

export const errorView = z.object({
  code: z.string().describe('stable machine-readable error code'),
  message: z.string(),
});

function iso(t: number | null): string | null {
  return t === null ? null : new Date(t * 1000).toISOString();
}

export function leaseJson(l: Lease, at = Date.now() / 1000): z.infer<typeof leaseView> {
  const open = l.state === 'pending' || l.state === 'active' || l.state === 'releasing';
  return {
    id: l.id,
    state: l.state,
    labels: l.labels,
    node_count: l.nodeCount,
    request_id: l.requestId,
    nodes: l.nodes,
    token: l.tokenName,
    owner: l.owner,
    ttl: l.ttl,
    comment: l.comment,
    created_at: iso(l.createdAt) ?? '',
    fulfilled_at: iso(l.fulfilledAt),
    expires_at: iso(l.expiresAt) ?? '',
    expires_in: open ? Math.max(0, Math.floor(l.expiresAt - at)) : null,
    ended_at: iso(l.endedAt),
    error: l.error,
  };
}

export function zodMessage(err: z.ZodError): { message: string; issues: { path: string; message: string }[] } {
  const issues = err.issues.map((i) => ({ path: i.path.map(String).join('.') || '(body)', message: i.message }));
  return { message: issues.map((i) => `${i.path}: ${i.message}`).join('; '), issues };
}

/** What the lease API needs; `leases` is null while the database is unavailable. */
export interface LeaseApiHost {
  leases(): LeaseManager | null;
  /** labels a lease may ask for (offered by some registered launcher) */
  knownLabels(): Promise<Set<string>>;
}

const STATES: readonly LeaseState[] = ['pending', 'active', 'releasing', 'returned', 'expired', 'cancelled', 'failed', 'lost'];

export class LeaseApi {
  private readonly createSchema: ReturnType<typeof leaseCreateSchema>;
  private readonly extendSchema: ReturnType<typeof leaseExtendSchema>;
  /** POSTs of one token run one at a time, so two cannot both pass the node limit */
  private readonly tokenChains = new Map<string, Promise<unknown>>();

  constructor(private readonly host: LeaseApiHost, private readonly auth: Authenticator, private readonly limits: LeaseLimits,
    private readonly log: Logger) {
    this.createSchema = leaseCreateSchema(limits);
    this.extendSchema = leaseExtendSchema(limits);
  }

  private leases(): LeaseManager {
    const m = this.host.leases();
    if (!m) throw new UnavailableError('database_unavailable', 'leases are unavailable: the launcher cannot reach its database');
    return m;
  }

  private parse<T>(schema: z.ZodType<T>, body: unknown): T {
    const r = schema.safeParse(body ?? {});
    if (!r.success) {
      const { message, issues } = zodMessage(r.error);
      throw new ApiError(400, 'invalid_body', message, { issues });
    }
    return r.data;
  }

  private async owned(id: string, token: TokenInfo): Promise<Lease> {
    const lease = await this.leases().store.get(id);
    if (!lease) throw new ApiError(404, 'lease_not_found', `no lease ${id}`);
    if (lease.tokenId !== token.id) throw new ApiError(403, 'forbidden', `lease ${id} belongs to another token`);
    return lease;
  }

  private perToken<T>(tokenId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tokenChains.get(tokenId) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.tokenChains.set(tokenId, next);
    void next.catch(() => undefined).finally(() => {
      if (this.tokenChains.get(tokenId) === next) this.tokenChains.delete(tokenId);
    });
    return next;
  }

  register(app: FastifyInstance): void {
    app.post(`${API_PREFIX}/leases`, async (req, reply) => {
      const token = await this.auth.authenticate(req, 'leases');
      const body = this.parse(this.createSchema, req.body);
      const known = await this.host.knownLabels();
      for (const label of Object.keys(body.labels)) {
        if (!known.has(label)) {
          throw new ApiError(400, 'unknown_label', `no launcher offers label ${label}`, { label, known: [...known].sort() });
        }
      }
      const count = Object.values(body.labels).reduce((a, b) => a + b, 0);
      const mgr = this.leases();
      const lease = await this.perToken(token.id, async () => {
        const held = await mgr.store.nodesHeldBy(token.id);
        const max = token.maxNodes ?? this.limits.maxNodesPerToken;
        if (held + count > max) {
          throw new ApiError(403, 'max_nodes_exceeded',
            `token ${token.name} may hold at most ${max} nodes; it holds or waits for ${held} and asked for ${count}`,
            { limit: max, held, requested: count });
        }
        return mgr.create({ tokenId: token.id, tokenName: token.name, labels: body.labels, ttl: body.ttl ?? this.limits.defaultTtl, comment: body.comment ?? null });
      });
      await mgr.waitSettled(lease.id, (body.wait ?? 0) * 1000);
      const now = (await mgr.store.get(lease.id)) ?? lease;
      reply.header('Location', `${API_PREFIX}/leases/${now.id}`);
      if (now.state === 'failed') {
        throw new ApiError(503, 'lease_failed', now.error ?? 'the node request failed', { lease: leaseJson(now) });
      }
      return reply.code(now.state === 'pending' ? 202 : 201).send(leaseJson(mgr.live(now)));
    });

    app.get(`${API_PREFIX}/leases`, async (req) => {
      const q = req.query as Record<string, unknown>;
      const state = typeof q.state === 'string' ? q.state : null;
      if (state !== null && !STATES.includes(state as LeaseState)) {
        throw new ApiError(400, 'invalid_body', `state: expected one of ${STATES.join(', ')}`);
      }
      const mgr = this.leases();
      const list = await mgr.store.list(state ? { states: [state as LeaseState] } : {});
      return list.map((l) => leaseJson(mgr.live(l)));
    });

    app.get(`${API_PREFIX}/leases/:id`, async (req) => {
      const { id } = req.params as { id: string };
      const mgr = this.leases();
      const lease = await mgr.store.get(id);
      if (!lease) throw new ApiError(404, 'lease_not_found', `no lease ${id}`);
      return leaseJson(mgr.live(lease));
    });

    app.patch(`${API_PREFIX}/leases/:id`, async (req) => {
      const token = await this.auth.authenticate(req, 'leases');
      const { id } = req.params as { id: string };
      const body = this.parse(this.extendSchema, req.body);
      await this.owned(id, token);
      const mgr = this.leases();
      return leaseJson(mgr.live(await mgr.extend(id, body.ttl)));
    });

    app.delete(`${API_PREFIX}/leases/:id`, async (req, reply) => {
      const token = await this.auth.authenticate(req, 'leases');
      const { id } = req.params as { id: string };
      await this.owned(id, token);
      const mgr = this.leases();
      const lease = await mgr.end(id, 'returned');
      this.log.info({ lease: id, token: token.name, state: lease.state }, `Lease ${id}: ${lease.state} on request`);
      return reply.code(lease.state === 'releasing' ? 202 : 200).send(leaseJson(lease));
    });
  }
}
