// The OpenAPI 3.1 description served at /api/v1/openapi.json. The request and response schemas
// are generated from the same zod schemas that validate the requests, so the document cannot
// drift from what the server accepts.
import { z } from 'zod';
import { errorView, leaseCreateSchema, leaseExtendSchema, leaseView, API_PREFIX } from './lease-api.js';
import type { LeaseLimits } from './leases.js';
import { runtimeHostResponseView, staticHostCreateSchema, staticHostRowView } from './static-host-api.js';

function schema(s: z.ZodType, io: 'input' | 'output' = 'output'): Record<string, unknown> {
  const out = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  delete out.$schema;
  return out;
}

const text = { 'text/plain': { schema: { type: 'string' } } };
const errorRef = { $ref: '#/components/schemas/Error' };
const leaseRef = { $ref: '#/components/schemas/Lease' };
const hostRef = { $ref: '#/components/schemas/RuntimeStaticHost' };

function errors(...codes: number[]): Record<string, unknown> {
  return errorsWith({}, ...codes);
}

function errorsWith(over: Record<number, string>, ...codes: number[]): Record<string, unknown> {
  const why: Record<number, string> = {
    400: 'invalid body or parameter (code invalid_body, unknown_label)',
    401: 'no token, or an unknown one (missing_token, invalid_token)',
    403: 'token revoked or expired, token without the scope `leases`, lease of another token, or too many nodes held '
      + '(token_revoked, token_expired, insufficient_scope, forbidden, max_nodes_exceeded)',
    404: 'no such lease (lease_not_found)',
    409: 'the lease is not in a state that allows this (lease_conflict)',
    429: 'rate limit of the token reached (rate_limited; see Retry-After)',
    503: 'database or ZooKeeper unavailable, or the node request failed (lease_failed)',
    ...over,
  };
  const out: Record<string, unknown> = {};
  for (const c of codes) out[String(c)] = { description: why[c] ?? 'error', content: { 'application/json': { schema: errorRef } } };
  return out;
}

function listing(path: string, summary: string, extraParams: unknown[] = []): Record<string, unknown> {
  return {
    get: {
      tags: ['nodepool'],
      summary,
      description: 'Nodepool-compatible: a text table, or JSON with `Accept: application/json` '
        + `or \`${path}.json\`. Cached for 1 s (Cache-Control, Last-Modified, Expires; If-Modified-Since → 304).`,
      parameters: [
        { name: 'fields', in: 'query', required: false, schema: { type: 'string' }, description: 'comma-separated column keys (text only)' },
        ...extraParams,
      ],
      responses: {
        200: { description: 'the listing', content: { ...text, 'application/json': { schema: { type: 'array', items: { type: 'object' } } } } },
        304: { description: 'not modified since If-Modified-Since' },
      },
    },
  };
}

export function openApiDocument(limits: LeaseLimits, version: string): Record<string, unknown> {
  const security = [{ bearer: [] }, { xAuthToken: [] }];
  return {
    openapi: '3.1.0',
    info: {
      title: 'nodepool-ts launcher API',
      version,
      description: 'Nodepool\'s read-only web API, the lease API (nodes for people and scripts), '
        + 'the live dashboard and metrics. Reading is open; every mutation needs a token created with '
        + '`nodepool token create --name NAME [--scope leases] [--scope hosts]`: the lease endpoints need the scope '
        + '`leases` (the default), the static-host endpoints `hosts`; a token without the scope gets 403 `insufficient_scope`. '
        + 'Errors are JSON `{"code", "message"}`.',
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer np_...' },
        xAuthToken: { type: 'apiKey', in: 'header', name: 'X-Auth-Token' },
      },
      schemas: {
        Error: schema(errorView),
        Lease: schema(leaseView),
        LeaseCreate: schema(leaseCreateSchema(limits), 'input'),
        LeaseExtend: schema(leaseExtendSchema(limits), 'input'),
        StaticHost: schema(staticHostRowView),
        RuntimeStaticHost: schema(runtimeHostResponseView),
        StaticHostCreate: schema(staticHostCreateSchema, 'input'),
      },
    },
    paths: {
      '/image-list': listing('/image-list', 'Provider image uploads'),
      '/dib-image-list': listing('/dib-image-list', 'Disk image builds'),
      '/image-status': listing('/image-status', 'Images: paused, pending build requests'),
      '/node-list': listing('/node-list', 'Nodes', [
        { name: 'node_id', in: 'query', required: false, schema: { type: 'string' }, description: 'only this node (unknown id: empty list)' },
      ]),
      '/request-list': listing('/request-list', 'Open node requests'),
      '/label-list': listing('/label-list', 'Labels offered by the registered launchers'),
      '/ready': {
        get: {
          tags: ['nodepool'],
          summary: 'Readiness probe',
          responses: { 200: { description: 'serving', content: text }, 503: { description: 'starting, stopping or disconnected from ZooKeeper', content: text } },
        },
      },
      '/metrics': {
        get: { tags: ['metrics'], summary: 'Prometheus metrics', responses: { 200: { description: 'text exposition format', content: text } } },
      },
      '/dashboard': {
        get: { tags: ['dashboard'], summary: 'The live dashboard (HTML)', responses: { 200: { description: 'HTML page' } } },
      },
      [`${API_PREFIX}/status`]: {
        get: { tags: ['dashboard'], summary: 'What the dashboard shows, as JSON', responses: { 200: { description: 'status snapshot', content: { 'application/json': { schema: { type: 'object' } } } } } },
      },
      [`${API_PREFIX}/events`]: {
        get: { tags: ['dashboard'], summary: 'Server-sent events: a `status` event whenever nodes, requests or leases change', responses: { 200: { description: 'text/event-stream' } } },
      },
      [`${API_PREFIX}/history`]: {
        get: {
          tags: ['dashboard'],
          summary: 'History series from the database: launch time, fulfilment latency, nodes in use',
          parameters: [{ name: 'hours', in: 'query', required: false, schema: { type: 'number', minimum: 0.1, maximum: 168 } }],
          responses: { 200: { description: 'series', content: { 'application/json': { schema: { type: 'object' } } } }, ...errors(400, 503) },
        },
      },
      [`${API_PREFIX}/leases`]: {
        get: {
          tags: ['leases'],
          summary: 'List leases (newest first, at most 200)',
          parameters: [{ name: 'state', in: 'query', required: false, schema: { type: 'string' } }],
          responses: { 200: { description: 'leases', content: { 'application/json': { schema: { type: 'array', items: leaseRef } } } }, ...errors(400, 503) },
        },
        post: {
          tags: ['leases'],
          summary: 'Lease nodes: submits a node request exactly like Zuul',
          security,
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/LeaseCreate' } } } },
          responses: {
            201: { description: 'nodes delivered (within `wait`)', content: { 'application/json': { schema: leaseRef } } },
            202: { description: 'accepted; poll the Location until `state` is active', content: { 'application/json': { schema: leaseRef } } },
            ...errors(400, 401, 403, 429, 503),
          },
        },
      },
      [`${API_PREFIX}/leases/{id}`]: {
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        get: {
          tags: ['leases'],
          summary: 'A lease with its nodes (addresses, username, port, host keys) and expiry',
          responses: { 200: { description: 'the lease', content: { 'application/json': { schema: leaseRef } } }, ...errors(404, 503) },
        },
        patch: {
          tags: ['leases'],
          summary: 'Extend (or shorten) a lease: new ttl counted from now',
          security,
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/LeaseExtend' } } } },
          responses: { 200: { description: 'the lease', content: { 'application/json': { schema: leaseRef } } }, ...errors(400, 401, 403, 404, 409, 429, 503) },
        },
        delete: {
          tags: ['leases'],
          summary: 'Return the nodes (marked used, then deleted; static hosts re-registered)',
          security,
          responses: {
            200: { description: 'returned (or cancelled while pending)', content: { 'application/json': { schema: leaseRef } } },
            202: { description: 'another launcher holds the nodes; it returns them shortly (state releasing)', content: { 'application/json': { schema: leaseRef } } },
            ...errors(401, 403, 404, 429, 503),
          },
        },
      },
      [`${API_PREFIX}/static-hosts`]: {
        get: {
          tags: ['static-hosts'],
          summary: 'Static hosts, from nodepool.yaml and added at runtime, with their registered and ready slots '
            + '(what `nodepool static-host list --json` prints)',
          parameters: [
            { name: 'provider', in: 'query', required: false, schema: { type: 'string' }, description: 'only this static provider' },
            { name: 'os', in: 'query', required: false, schema: { type: 'string' }, description: 'only hosts with this os (case-insensitive)' },
            { name: 'tag', in: 'query', required: false, schema: { type: 'array', items: { type: 'string' } }, style: 'form', explode: true,
              description: 'only hosts with every given tag (repeat the parameter)' },
          ],
          responses: {
            200: { description: 'the hosts', content: { 'application/json': { schema: { type: 'array', items: { $ref: '#/components/schemas/StaticHost' } } } } },
            ...errors(400, 503),
          },
        },
        post: {
          tags: ['static-hosts'],
          summary: 'Add a host to a configured static pool (kept in ZooKeeper; every launcher serving the provider registers it '
            + 'after an alive check). Needs the scope `hosts`.',
          security,
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/StaticHostCreate' } } } },
          responses: {
            201: { description: 'added; `registered` counts up once a launcher has checked the host', content: { 'application/json': { schema: hostRef } } },
            ...errorsWith({
              400: 'invalid body: `issues[].path` names the field (invalid_body)',
              403: 'token revoked or expired, or without the scope `hosts` (token_revoked, token_expired, insufficient_scope)',
              409: 'the name is configured in nodepool.yaml or already added (host_exists)',
              503: 'database or ZooKeeper unavailable',
            }, 400, 401, 403, 409, 429, 503),
          },
        },
      },
      [`${API_PREFIX}/static-hosts/{name}`]: {
        parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
        delete: {
          tags: ['static-hosts'],
          summary: 'Remove a runtime host: its free nodes are deregistered, nodes in use finish their job first. Needs the scope `hosts`.',
          security,
          parameters: [{ name: 'provider', in: 'query', required: false, schema: { type: 'string' }, description: 'the host\'s provider (default: wherever it is)' }],
          responses: {
            200: { description: 'the removed host', content: { 'application/json': { schema: hostRef } } },
            ...errorsWith({
              403: 'token revoked or expired, or without the scope `hosts` (token_revoked, token_expired, insufficient_scope)',
              404: 'no runtime host of that name; hosts of nodepool.yaml are removed by editing it (host_not_found)',
              503: 'database or ZooKeeper unavailable',
            }, 401, 403, 404, 429, 503),
          },
        },
      },
    },
  };
}
