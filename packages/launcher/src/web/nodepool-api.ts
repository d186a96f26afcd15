// Nodepool's read-only web API (§7): /image-list, /dib-image-list, /image-status (Nodepool 6+),
// /node-list, /request-list, /label-list as PrettyTable text (no final newline) or Python-json.dumps JSON, `fields=` for the
// text columns, and /ready. Rows and columns come from the CLI's listing code, so the web and
// `nodepool list` can never disagree.
//
// Differences from Nodepool, on purpose:
// * `<path>.json` selects JSON like `Accept: application/json` (later Nodepool does the same);
// * an Accept header that allows none of the three formats gets 406, not Nodepool's 500;
// * a connection_port that is an object (k8s-style drivers keep credentials there) is replaced
//   by "<redacted>": no secret is ever served.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  DIB_IMAGE_COLUMNS, IMAGE_COLUMNS, IMAGE_STATUS_COLUMNS, LABEL_COLUMNS, NODE_COLUMNS, REQUEST_COLUMNS,
  dibImageList, imageAge, imageList, imageStatus, imageStatusCells, labelList, nodeList, requestList,
} from '@nodepool-ts/cli/status';
import type { NodeRow } from '@nodepool-ts/cli/status';
import { formatObjects, type Cell, type Column } from '@nodepool-ts/cli/table';
import { pythonJson } from '@nodepool-ts/core/model';
import { nowSeconds } from '@nodepool-ts/core/util';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import { ApiError, UnavailableError } from './errors.js';

export type Offer = 'text/html' | 'text/plain' | 'application/json';
const OFFERS: readonly Offer[] = ['text/html', 'text/plain', 'application/json'];

interface Range {
  type: string;
  subtype: string;
  q: number;
}

function parseAccept(header: string): Range[] {
  const out: Range[] = [];
  for (const part of header.split(',')) {
    const [media = '', ...params] = part.trim().split(';');
    const [type = '', subtype = ''] = media.trim().toLowerCase().split('/');
    if (type === '' || subtype === '') continue;
    let q = 1;
    for (const p of params) {
      const [k, v] = p.trim().split('=');
      if (k?.trim().toLowerCase() === 'q' && v !== undefined) {
        const n = Number(v.trim());
        q = Number.isFinite(n) ? Math.min(1, Math.max(0, n)) : 0;
      }
    }
    out.push({ type, subtype, q });
  }
  return out;
}

/**
 * webob's `accept.best_match(['text/html', 'text/plain', 'application/json'])`: the quality of an
 * offer is that of the most specific range matching it; the highest wins, the earlier offer on a
 * tie. No Accept header accepts everything. Null when nothing is acceptable.
 */
export function bestMatch(accept: string | undefined): Offer | null {
  if (accept === undefined || accept.trim() === '') return 'text/html';
  const ranges = parseAccept(accept);
  let best: Offer | null = null;
  let bestQ = 0;
  for (const offer of OFFERS) {
    const [type, subtype] = offer.split('/');
    let q = -1;
    let specificity = -1;
    for (const r of ranges) {
      const spec = r.type === type && r.subtype === subtype ? 2 : r.type === type && r.subtype === '*' ? 1
        : r.type === '*' && r.subtype === '*' ? 0 : -1;
      if (spec > specificity) {
        specificity = spec;
        q = r.q;
      }
    }
    if (q > bestQ) {
      best = offer;
      bestQ = q;
    }
  }
  return best;
}

type Format = 'json' | 'pretty';

interface Rendered {
  body: string;
  contentType: string;
  /** whole seconds: HTTP dates have no finer resolution */
  lastModified: number;
  createdMs: number;
}

/** rows of one listing: objects whose values are table cells */
type Rows = readonly object[];

interface Listing {
  columns: readonly Column[];
  /** rows for JSON (keys = the JSON keys) and the same rows as text cells */
  load(zk: ZooKeeper, params: URLSearchParams, now: number): Promise<{ json: unknown[]; text: Rows }>;
}

const NODE_ID_RE = /^[^/]+$/;

function safeNodeRow(r: NodeRow): Omit<NodeRow, 'connection_port'> & { connection_port: number | string } {
  return { ...r, connection_port: typeof r.connection_port === 'number' ? r.connection_port : '<redacted>' };
}

const LISTINGS: Readonly<Record<string, Listing>> = {
  '/image-list': {
    columns: IMAGE_COLUMNS,
    async load(zk, _params, now) {
      const rows = await imageList(zk);
      return { json: rows, text: rows.map((r) => ({ ...r, age: imageAge(r.age, now) })) };
    },
  },
  '/image-status': {
    columns: IMAGE_STATUS_COLUMNS,
    async load(zk, _params, now) {
      const rows = await imageStatus(zk);
      return { json: rows, text: rows.map((r) => imageStatusCells(r, now)) };
    },
  },
  '/dib-image-list': {
    columns: DIB_IMAGE_COLUMNS,
    async load(zk, _params, now) {
      const rows = await dibImageList(zk);
      return { json: rows, text: rows.map((r) => ({ ...r, age: imageAge(r.age, now) })) };
    },
  },
  '/node-list': {
    columns: NODE_COLUMNS,
    async load(zk, params, now) {
      // webob's params.get(): the last value of a repeated parameter
      const all = params.getAll('node_id');
      const nodeId = all.length > 0 ? all[all.length - 1] ?? null : null;
      if (nodeId !== null && nodeId !== '' && !NODE_ID_RE.test(nodeId)) return { json: [], text: [] };
      const rows = (await nodeList(zk, { nodeId: nodeId || null, now })).map(safeNodeRow);
      return { json: rows, text: rows };
    },
  },
  '/request-list': {
    columns: REQUEST_COLUMNS,
    async load(zk) {
      const rows = await requestList(zk);
      return { json: rows, text: rows };
    },
  },
  '/label-list': {
    columns: LABEL_COLUMNS,
    async load(zk) {
      const rows = await labelList(zk);
      return { json: rows, text: rows };
    },
  },
};

export const NODEPOOL_PATHS = Object.keys(LISTINGS);

export interface NodepoolApiHost {
  readonly zk: ZooKeeper;
  /** whether the launcher is up and serving (`/ready`) */
  isReady(): boolean;
}

function httpDate(seconds: number): string {
  return new Date(seconds * 1000).toUTCString();
}

export class NodepoolApi {
  private readonly cache = new Map<string, Rendered>();
  private pruneAt = 0;

  constructor(private readonly host: NodepoolApiHost, private readonly cacheSeconds = 1) {}

  register(app: FastifyInstance): void {
    for (const path of NODEPOOL_PATHS) {
      app.get(path, (req, reply) => this.serve(req, reply, path, false));
      app.get(`${path}.json`, (req, reply) => this.serve(req, reply, path, true));
    }
    app.get('/ready', async (_req, reply) => {
      const ready = this.host.isReady();
      reply.header('Cache-Control', 'no-cache').type('text/plain; charset=UTF-8');
      return reply.code(ready ? 200 : 503).send(ready ? 'OK' : 'Service Unavailable');
    });
  }

  private async serve(req: FastifyRequest, reply: FastifyReply, path: string, forceJson: boolean): Promise<FastifyReply> {
    let format: Format;
    if (forceJson) {
      format = 'json';
    } else {
      const offer = bestMatch(req.headers.accept);
      if (offer === null) {
        throw new ApiError(406, 'not_acceptable', 'this endpoint serves text/plain or application/json');
      }
      format = offer === 'application/json' ? 'json' : 'pretty';
    }
    const params = new URL(req.url, 'http://localhost').searchParams;
    const rendered = await this.render(path, params, format);
    reply.header('Access-Control-Allow-Origin', '*');
    reply.header('Cache-Control', `max-age=${this.cacheSeconds}, public`);
    reply.header('Last-Modified', httpDate(rendered.lastModified));
    reply.header('Expires', httpDate(rendered.lastModified + this.cacheSeconds));
    const ims = req.headers['if-modified-since'];
    if (typeof ims === 'string') {
      const since = Date.parse(ims);
      if (!Number.isNaN(since) && rendered.lastModified <= since / 1000) return reply.code(304).send();
    }
    // a Buffer keeps Fastify from appending "; charset=utf-8" to application/json (Nodepool sends none)
    return reply.type(rendered.contentType).send(Buffer.from(rendered.body, 'utf8'));
  }

  private async render(path: string, params: URLSearchParams, format: Format): Promise<Rendered> {
    const entries = [...params.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const key = `${format} ${path} ${JSON.stringify(entries)}`;
    const nowMs = Date.now();
    const hit = this.cache.get(key);
    if (hit && nowMs - hit.createdMs < this.cacheSeconds * 1000) return hit;
    if (nowMs > this.pruneAt) {
      for (const [k, v] of this.cache) if (nowMs - v.createdMs >= this.cacheSeconds * 1000) this.cache.delete(k);
      this.pruneAt = nowMs + 10_000;
    }
    const listing = LISTINGS[path];
    if (!listing) throw new ApiError(404, 'not_found', `no such endpoint: ${path}`);
    if (this.host.zk.state !== 'connected') {
      throw new UnavailableError('zookeeper_unavailable', 'the launcher is not connected to ZooKeeper');
    }
    const now = nowSeconds();
    const rows = await listing.load(this.host.zk, params, now);
    let body: string;
    let contentType: string;
    if (format === 'json') {
      body = pythonJson(rows.json);
      contentType = 'application/json';
    } else {
      const fieldsParam = params.getAll('fields');
      const fieldsText = fieldsParam.length > 0 ? fieldsParam[fieldsParam.length - 1] ?? '' : '';
      const fields = fieldsText !== '' ? fieldsText.split(',') : null;
      body = formatObjects(listing.columns, rows.text as readonly Record<string, Cell>[], fields);
      contentType = 'text/plain; charset=UTF-8';
    }
    const rendered: Rendered = { body, contentType, lastModified: Math.floor(now), createdMs: nowMs };
    this.cache.set(key, rendered);
    return rendered;
  }
}
