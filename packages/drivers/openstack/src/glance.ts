// Glance v2, which pkgcloud does not speak (its compute client only reaches Nova's deprecated
// image proxy, which cannot create an image or upload data): list with pagination, show, create,
// stream the data with PUT .../file (with progress), delete. Uses the session's token and
// catalog; every call is rate limited and classified like the rest of the driver.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import type { ImageInfo } from '@nodepool-ts/core/provider';
import type { OpenStackSession } from './session.js';

/** The fields Glance v2 shows for every image; anything else is a user property. */
const CORE_FIELDS = new Set([
  'id', 'name', 'status', 'visibility', 'protected', 'os_hidden', 'tags', 'disk_format', 'container_format', 'size',
  'virtual_size', 'checksum', 'os_hash_algo', 'os_hash_value', 'owner', 'min_disk', 'min_ram', 'created_at',
  'updated_at', 'self', 'file', 'schema', 'direct_url', 'locations', 'stores',
]);

export interface GlanceImage {
  id: string;
  name: string;
  status: string;
  visibility: string;
  diskFormat: string | null;
  size: number | null;
  checksum: string | null;
  owner: string | null;
  properties: Record<string, string>;
}

export function parseGlanceImage(raw: unknown): GlanceImage {
  const r = (raw !== null && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const properties: Record<string, string> = {};
  for (const [k, v] of Object.entries(r)) {
    if (!CORE_FIELDS.has(k) && typeof v === 'string') properties[k] = v;
  }
  return {
    id: String(r.id ?? ''),
    name: typeof r.name === 'string' ? r.name : '',
    status: typeof r.status === 'string' ? r.status : 'unknown',
    visibility: typeof r.visibility === 'string' ? r.visibility : 'private',
    diskFormat: typeof r.disk_format === 'string' ? r.disk_format : null,
    size: typeof r.size === 'number' ? r.size : null,
    checksum: typeof r.checksum === 'string' ? r.checksum : null,
    owner: typeof r.owner === 'string' ? r.owner : null,
    properties,
  };
}

export function toImageInfo(g: GlanceImage): ImageInfo {
  return {
    id: g.id, name: g.name, status: g.status, metadata: { ...g.properties }, size: g.size, checksum: g.checksum,
    format: g.diskFormat,
  };
}

export interface CreateImageRequest {
  name: string;
  diskFormat: string;
  containerFormat: string;
  visibility: 'private' | 'shared' | 'public' | 'community';
  /** user properties (all strings, as Glance requires) */
  properties: Record<string, string>;
}

const PAGE = 200;

export class GlanceApi {
  constructor(private readonly session: OpenStackSession) {}

  /** Every image the project can see, following Glance's `next` links. */
  async list(operation: string, filters: Record<string, string> = {}): Promise<GlanceImage[]> {
    const out: GlanceImage[] = [];
    let marker: string | undefined;
    for (;;) {
      const r = await this.session.http('image', 'GET', '/v2/images', {
        operation, name: 'images', query: { limit: PAGE, ...filters, ...(marker ? { marker } : {}) },
      });
      const body = r.body as { images?: unknown[]; next?: string };
      const page = (body.images ?? []).map(parseGlanceImage);
      out.push(...page);
      const last = page[page.length - 1];
      if (!body.next || !last || page.length === 0) return out;
      marker = last.id;
    }
  }

  async get(id: string, operation: string): Promise<GlanceImage | null> {
    try {
      const r = await this.session.http('image', 'GET', `/v2/images/${encodeURIComponent(id)}`, { operation, name: 'image' });
      return parseGlanceImage(r.body);
    } catch (err) {
      if ((err as { kind?: string }).kind === 'notfound') return null;
      throw err;
    }
  }

  async create(req: CreateImageRequest, operation: string): Promise<GlanceImage> {
    const r = await this.session.http('image', 'POST', '/v2/images', {
      operation, name: 'images',
      json: {
        ...req.properties, name: req.name, disk_format: req.diskFormat, container_format: req.containerFormat,
        visibility: req.visibility,
      },
    });
    return parseGlanceImage(r.body);
  }

  /**
   * Streams `file` into the image. `onProgress` sees the bytes sent so far; the upload has an
   * idle timeout (no byte moved for `idleTimeoutMs`), not a total one.
   */
  async upload(id: string, file: string, operation: string, opts: {
    onProgress?: (bytes: number, total: number) => void; signal?: AbortSignal; idleTimeoutMs?: number;
  } = {}): Promise<number> {
    const { size } = await stat(file);
    let sent = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb: TransformCallback) {
        sent += chunk.length;
        opts.onProgress?.(sent, size);
        cb(null, chunk);
      },
    });
    const src = createReadStream(file);
    src.on('error', (err) => counter.destroy(err));
    const stream = src.pipe(counter);
    await this.session.http('image', 'PUT', `/v2/images/${encodeURIComponent(id)}/file`, {
      operation, name: 'image_file', stream, contentLength: size, headers: { 'Content-Type': 'application/octet-stream' },
      ...(opts.signal ? { signal: opts.signal } : {}), timeoutMs: opts.idleTimeoutMs ?? 300_000,
    });
    return size;
  }

  async delete(id: string, operation: string): Promise<void> {
    await this.session.http('image', 'DELETE', `/v2/images/${encodeURIComponent(id)}`, { operation, name: 'image' });
  }
}
