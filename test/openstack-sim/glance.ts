// Glance v2: version discovery, images (create, list with filters and pagination, show, patch,
// delete), image data upload (PUT .../file, streamed, checksummed), schemas and import info.
import type { ServerResponse } from 'node:http';
import { createHash, randomUUID } from 'node:crypto';
import {
  HttpError, isoZ, readJson, readRaw, send, serviceError,
  type SimRequest, type SimResponse, type TokenInfo,
} from './http.js';
import type { SimImage } from './model.js';
import type { OpenStackSim } from './sim.js';

const DISK_FORMATS = ['ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop'];
const CONTAINER_FORMATS = ['ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed'];
const READ_ONLY = ['checksum', 'created_at', 'direct_url', 'file', 'locations', 'os_hash_algo', 'os_hash_value',
  'owner', 'schema', 'self', 'size', 'status', 'updated_at', 'virtual_size', 'stores'];
const BASE_ATTRS = ['id', 'name', 'visibility', 'protected', 'disk_format', 'container_format', 'min_disk', 'min_ram',
  'tags', 'os_hidden'];

function err(status: number, message: string): HttpError {
  return new HttpError(serviceError('image', status, message));
}

function versions(sim: OpenStackSim): Record<string, unknown> {
  const ids = ['v2.16', 'v2.15', 'v2.9', 'v2.7', 'v2.6', 'v2.5', 'v2.4', 'v2.3', 'v2.2', 'v2.1', 'v2.0'];
  return {
    versions: ids.map((id, i) => ({
      id, status: i === 0 ? 'CURRENT' : 'SUPPORTED', links: [{ rel: 'self', href: `${sim.base}/image/v2/` }],
    })),
  };
}

/** An image as Glance v2 shows it: custom properties at top level. */
export function glanceImage(_sim: OpenStackSim, im: SimImage): Record<string, unknown> {
  return {
    ...im.props,
    id: im.id,
    name: im.name,
    status: im.status,
    visibility: im.visibility,
    protected: im.protected,
    os_hidden: false,
    tags: im.tags,
    disk_format: im.diskFormat,
    container_format: im.containerFormat,
    size: im.size,
    virtual_size: null,
    checksum: im.checksum,
    os_hash_algo: im.osHashValue ? 'sha512' : null,
    os_hash_value: im.osHashValue,
    owner: im.owner,
    min_disk: im.minDisk,
    min_ram: im.minRam,
    created_at: isoZ(im.createdAt),
    updated_at: isoZ(im.updatedAt),
    self: `/v2/images/${im.id}`,
    file: `/v2/images/${im.id}/file`,
    schema: '/v2/schemas/image',
  };
}

function visible(im: SimImage, token: TokenInfo): boolean {
  return im.status !== 'deleted' && (im.visibility === 'public' || im.visibility === 'community' || im.owner === token.projectId);
}

function find(sim: OpenStackSim, token: TokenInfo, id: string): SimImage {
  const im = sim.state.images.get(id);
  if (!im || !visible(im, token)) throw err(404, `No image found with ID ${id}`);
  return im;
}

export async function handleImage(sim: OpenStackSim, req: SimRequest, res: ServerResponse,
  headers: Record<string, string>): Promise<SimResponse> {
  const path = req.path.replace(/\/+$/, '') || '/';
  if (req.method === 'GET' && path === '/') return { status: 300, body: versions(sim) };
  if (req.method === 'GET' && path === '/versions') return { status: 200, body: versions(sim) };
  const token = sim.requireAuth(req);
  const seg = path.split('/').filter((s) => s !== '').map(decodeURIComponent);
  if (seg[0] !== 'v2') return serviceError('image', 404, 'The resource could not be found.');
  const [, a, b, c] = seg;
  const M = req.method;
  if (a === 'images') {
    if (seg.length === 2 && M === 'GET') return list(sim, req, token);
    if (seg.length === 2 && M === 'POST') return create(sim, req, token);
    if (b !== undefined) {
      const im = find(sim, token, b);
      if (seg.length === 3 && M === 'GET') return { status: 200, body: glanceImage(sim, im) };
      if (seg.length === 3 && M === 'DELETE') {
        if (im.owner !== token.projectId) throw err(403, 'You are not permitted to delete this image.');
        if (im.protected) throw err(403, `Image ${im.id} is protected and cannot be deleted.`);
        sim.state.images.delete(im.id);
        return { status: 204 };
      }
      if (seg.length === 3 && M === 'PATCH') return patch(sim, req, im);
      if (seg.length === 4 && c === 'file' && M === 'PUT') return upload(sim, req, res, headers, im);
      if (seg.length === 4 && c === 'file' && M === 'GET') {
        // the simulator keeps checksums, not data
        if (im.status !== 'active') return { status: 204 };
        throw err(503, 'The simulator does not store image data.');
      }
    }
  }
  if (a === 'schemas' && M === 'GET' && (b === 'image' || b === 'images')) return { status: 200, body: schema(b) };
  if (a === 'info' && b === 'import' && M === 'GET') {
    return {
      status: 200,
      body: { 'import-methods': { description: 'Import methods available.', type: 'array', value: ['glance-direct', 'web-download'] } },
    };
  }
  if (a === 'info' && b === 'stores' && M === 'GET') throw err(404, 'Multi backend is not supported at this site.');
  return serviceError('image', 404, 'The resource could not be found.');
}

function list(sim: OpenStackSim, req: SimRequest, token: TokenInfo): SimResponse {
  const q = req.query;
  let images = [...sim.state.images.values()].filter((im) => visible(im, token));
  const special = new Set(['limit', 'marker', 'sort_key', 'sort_dir', 'sort', 'member_status']);
  for (const [k, v] of q) {
    if (special.has(k)) continue;
    if (k === 'visibility') {
      if (v !== 'all') images = images.filter((im) => im.visibility === v);
      continue;
    }
    images = images.filter((im) => {
      const shown = glanceImage(sim, im)[k];
      if (k === 'tag') return im.tags.includes(v);
      if (k === 'name' && v.startsWith('in:')) return v.slice(3).split(',').includes(im.name ?? '');
      return shown !== undefined && shown !== null && String(shown) === v;
    });
  }
  const sortKey = q.get('sort_key') ?? 'created_at';
  const desc = (q.get('sort_dir') ?? 'desc') === 'desc';
  images.sort((x, y) => {
    const xv = String(glanceImage(sim, x)[sortKey] ?? '');
    const yv = String(glanceImage(sim, y)[sortKey] ?? '');
    const cmp = xv < yv ? -1 : xv > yv ? 1 : (x.id < y.id ? -1 : 1);
    return desc ? -cmp : cmp;
  });
  const marker = q.get('marker');
  if (marker) {
    const i = images.findIndex((im) => im.id === marker);
    if (i < 0) throw err(400, `Invalid marker. Image ${marker} could not be found.`);
    images = images.slice(i + 1);
  }
  const limitText = q.get('limit');
  const limit = Math.min(limitText ? Number(limitText) : 25, 1000);
  if (!Number.isInteger(limit) || limit < 0) throw err(400, 'limit param must be an integer');
  const page = images.slice(0, limit);
  const body: Record<string, unknown> = {
    images: page.map((im) => glanceImage(sim, im)),
    first: `/v2/images${limitText ? `?limit=${limit}` : ''}`,
    schema: '/v2/schemas/images',
  };
  const last = page[page.length - 1];
  if (images.length > limit && last) {
    const next = new URLSearchParams(q);
    next.set('marker', last.id);
    body.next = `/v2/images?${next.toString()}`;
  }
  return { status: 200, body };
}

function applyAttr(im: SimImage, key: string, value: unknown, op: 'add' | 'replace' | 'remove'): void {
  if (READ_ONLY.includes(key)) throw err(403, `Attribute '${key}' is read-only.`);
  if (op === 'remove') {
    if (BASE_ATTRS.includes(key)) throw err(403, `Attribute '${key}' is required and cannot be removed.`);
    if (!(key in im.props)) throw err(409, `Property ${key} does not exist.`);
    delete im.props[key];
    return;
  }
  switch (key) {
    case 'id': throw err(403, "Attribute 'id' is read-only.");
    case 'name':
      if (value !== null && typeof value !== 'string') throw err(400, "Provided object does not match schema 'image': name is not a string");
      im.name = value;
      return;
    case 'visibility':
      if (!['public', 'private', 'shared', 'community'].includes(String(value))) {
        throw err(400, `Provided object does not match schema 'image': '${String(value)}' is not one of ['community', 'public', 'private', 'shared']`);
      }
      im.visibility = value as SimImage['visibility'];
      return;
    case 'protected': im.protected = value === true; return;
    case 'disk_format':
      if (value !== null && !DISK_FORMATS.includes(String(value))) {
        throw err(400, `Invalid value '${String(value)}' for parameter 'disk_format': The image disk format must be one of ${DISK_FORMATS.join(', ')}`);
      }
      im.diskFormat = value === null ? null : String(value);
      return;
    case 'container_format':
      if (value !== null && !CONTAINER_FORMATS.includes(String(value))) {
        throw err(400, `Invalid value '${String(value)}' for parameter 'container_format'`);
      }
      im.containerFormat = value === null ? null : String(value);
      return;
    case 'min_disk': im.minDisk = Number(value) || 0; return;
    case 'min_ram': im.minRam = Number(value) || 0; return;
    case 'tags': im.tags = Array.isArray(value) ? value.map(String) : []; return;
    case 'os_hidden': return;
    default:
      if (typeof value !== 'string') {
        throw err(400, `Provided object does not match schema 'image': ${JSON.stringify(value)} is not of type 'string'`);
      }
      if (key.length > 255 || value.length > 65535) throw err(400, `Property ${key} is too long.`);
      im.props[key] = value;
  }
}

async function create(sim: OpenStackSim, req: SimRequest, token: TokenInfo): Promise<SimResponse> {
  const body = await readJson(req);
  const now = new Date();
  const id = typeof body.id === 'string' ? body.id : randomUUID();
  if (sim.state.images.has(id)) throw err(409, `Image with identifier ${id} already exists!`);
  const im: SimImage = {
    id, name: null, status: 'queued', visibility: 'shared', protected: false, diskFormat: null, containerFormat: null,
    size: null, checksum: null, osHashValue: null, owner: token.projectId, minDisk: 0, minRam: 0, tags: [], props: {},
    createdAt: now, updatedAt: now,
  };
  for (const [k, v] of Object.entries(body)) {
    if (k === 'id') continue;
    applyAttr(im, k, v, 'add');
  }
  sim.state.images.set(id, im);
  return { status: 201, headers: { Location: `${sim.base}/image/v2/images/${id}` }, body: glanceImage(sim, im) };
}

async function patch(sim: OpenStackSim, req: SimRequest, im: SimImage): Promise<SimResponse> {
  const ct = String(req.headers['content-type'] ?? '');
  if (!ct.startsWith('application/openstack-images-v2.1-json-patch') && !ct.startsWith('application/openstack-images-v2.0-json-patch')) {
    throw new HttpError(serviceError('image', 415, `Unsupported Content-Type ${ct}`));
  }
  const raw = await readRaw(req.raw);
  let ops: unknown;
  try { ops = JSON.parse(raw.toString('utf8')); } catch { throw err(400, 'Malformed JSON in request body.'); }
  if (!Array.isArray(ops)) throw err(400, 'Request body must be a JSON array of operation objects.');
  for (const o of ops) {
    const op = (o as Record<string, unknown>).op;
    const p = String((o as Record<string, unknown>).path ?? '');
    if (op !== 'add' && op !== 'replace' && op !== 'remove') throw err(400, `Invalid operation: ${String(op)}`);
    applyAttr(im, p.replace(/^\//, ''), (o as Record<string, unknown>).value, op);
  }
  im.updatedAt = new Date();
  return { status: 200, body: glanceImage(sim, im) };
}

/** Streams the data through md5 and sha512; the image is `saving` until the last byte. */
async function upload(sim: OpenStackSim, req: SimRequest, res: ServerResponse, headers: Record<string, string>,
  im: SimImage): Promise<SimResponse> {
  const ct = String(req.headers['content-type'] ?? '');
  if (!ct.startsWith('application/octet-stream')) {
    req.raw.resume();
    throw new HttpError(serviceError('image', 415, `Content-Type must be application/octet-stream, not ${ct}`));
  }
  if (im.status !== 'queued') {
    req.raw.resume();
    throw err(409, `Image status transition from ${im.status} to saving is not allowed`);
  }
  if (!im.diskFormat || !im.containerFormat) {
    req.raw.resume();
    throw err(400, 'Properties disk_format, container_format must be set prior to saving data.');
  }
  im.status = 'saving';
  im.updatedAt = new Date();
  const md5 = createHash('md5');
  const sha = createHash('sha512');
  let size = 0;
  try {
    for await (const chunk of req.raw) {
      const b = chunk as Buffer;
      md5.update(b);
      sha.update(b);
      size += b.length;
    }
  } catch {
    im.status = 'queued';
    return { status: 0 };
  }
  if (req.raw.readableAborted || !req.raw.complete) {
    // the client went away mid-upload: glance puts the image back to queued
    im.status = 'queued';
    return { status: 0 };
  }
  if (!sim.state.images.has(im.id)) {
    send(res, serviceError('image', 410, 'Image was deleted during upload.'), headers);
    return { status: 0 };
  }
  im.size = size;
  im.checksum = md5.digest('hex');
  im.osHashValue = sha.digest('hex');
  im.status = 'active';
  im.updatedAt = new Date();
  return { status: 204 };
}

function schema(which: 'image' | 'images'): Record<string, unknown> {
  const image = {
    name: 'image',
    additionalProperties: { type: 'string' },
    properties: {
      id: { type: 'string', pattern: '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$' },
      name: { type: ['null', 'string'], maxLength: 255 },
      status: { type: 'string', readOnly: true, enum: ['queued', 'saving', 'active', 'killed', 'deleted', 'uploading', 'importing', 'pending_delete', 'deactivated'] },
      visibility: { type: 'string', enum: ['community', 'public', 'private', 'shared'] },
      protected: { type: 'boolean' },
      os_hidden: { type: 'boolean' },
      checksum: { type: ['null', 'string'], readOnly: true, maxLength: 32 },
      os_hash_algo: { type: ['null', 'string'], readOnly: true, maxLength: 64 },
      os_hash_value: { type: ['null', 'string'], readOnly: true, maxLength: 128 },
      owner: { type: ['null', 'string'], maxLength: 255 },
      size: { type: ['null', 'integer'], readOnly: true },
      virtual_size: { type: ['null', 'integer'], readOnly: true },
      container_format: { type: ['null', 'string'], enum: [null, ...CONTAINER_FORMATS] },
      disk_format: { type: ['null', 'string'], enum: [null, ...DISK_FORMATS] },
      created_at: { type: 'string', readOnly: true },
      updated_at: { type: 'string', readOnly: true },
      tags: { type: 'array', items: { type: 'string', maxLength: 255 } },
      direct_url: { type: 'string', readOnly: true },
      min_ram: { type: 'integer' },
      min_disk: { type: 'integer' },
      self: { type: 'string', readOnly: true },
      file: { type: 'string', readOnly: true },
      schema: { type: 'string', readOnly: true },
      locations: { type: 'array', items: { type: 'object' } },
    },
    links: [
      { rel: 'self', href: '{self}' }, { rel: 'enclosure', href: '{file}' }, { rel: 'describedby', href: '{schema}' },
    ],
  };
  if (which === 'image') return image;
  return {
    name: 'images',
    properties: { images: { type: 'array', items: image }, schema: { type: 'string' }, first: { type: 'string' }, next: { type: 'string' } },
    links: [{ rel: 'first', href: '{first}' }, { rel: 'next', href: '{next}' }, { rel: 'describedby', href: '{schema}' }],
  };
}
