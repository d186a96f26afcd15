// (De)serialisation of Nodepool's znode payloads (§1.4). Reading is tolerant the way Nodepool's
// `fromDict` is (defaults for missing keys, `type` as a bare string, coerced hold_expiration) and
// never throws: data Nodepool could not load at all gives null, and the caller logs. Writing
// reproduces Nodepool's `json.dumps(toDict())` byte for byte, key order included, and appends the
// keys we did not understand so newer Zuul fields (event_id ...) survive our rewrites.
import { ModelError } from './errors.js';
import { parseJsonObject, pyFloatRepr, pyString, pythonJson } from './pyjson.js';
import {
  BUILD_STATES, NODE_STATES, REQUEST_STATES, UPLOAD_STATES,
  type BuildState, type ImageBuild, type ImageUpload, type LauncherInfo, type Node, type NodeRequest,
  type NodeResources, type NodeState, type RequestState, type UploadState,
} from './types.js';

type Data = Buffer | Uint8Array | string | null | undefined;
type Dict = Record<string, unknown>;

const nodeStates: ReadonlySet<string> = new Set(NODE_STATES);
const requestStates: ReadonlySet<string> = new Set(REQUEST_STATES);
const buildStates: ReadonlySet<string> = new Set(BUILD_STATES);
const uploadStates: ReadonlySet<string> = new Set(UPLOAD_STATES);

/** Node keys in the order Nodepool's `Node.toDict()` writes them. */
export const NODE_KEYS = [
  'state', 'state_time', 'cloud', 'provider', 'pool', 'type', 'allocated_to', 'az', 'region',
  'public_ipv4', 'private_ipv4', 'public_ipv6', 'host_id', 'interface_ip', 'connection_port',
  'ssh_port', 'image_id', 'launcher', 'created_time', 'external_id', 'hostname', 'comment',
  'hold_job', 'host_keys', 'username', 'connection_type', 'hold_expiration', 'resources',
  'attributes',
] as const;

/** NodeRequest keys in the order Nodepool's `NodeRequest.toDict()` writes them. */
export const REQUEST_KEYS = [
  'state', 'state_time', 'declined_by', 'node_types', 'nodes', 'reuse', 'requestor', 'provider',
  'relative_priority',
] as const;

const nodeKeySet: ReadonlySet<string> = new Set(NODE_KEYS);
const requestKeySet: ReadonlySet<string> = new Set(REQUEST_KEYS);

function now(): number {
  return Date.now() / 1000;
}

// ---------------------------------------------------------------- reading helpers

function has(d: Dict, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(d, key);
}

function isPlainObject(v: unknown): v is Dict {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function optStr(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return null;
}

function toStr(v: unknown): string {
  return typeof v === 'string' ? v : String(v);
}

/** Nodepool's `as_list`: falsy ⇒ [], a list stays, anything else is wrapped. */
function asList(v: unknown): string[] {
  if (Array.isArray(v)) return v.map(toStr);
  if (v === null || v === undefined || v === '' || v === 0 || v === false) return [];
  return [toStr(v)];
}

function num(v: unknown, dflt: number): number {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  return dflt;
}

function optNum(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** Python's `int(x)` as Nodepool applies it to hold_expiration; anything int() rejects gives 0. */
function pyInt(v: unknown): number {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number') return Number.isFinite(v) ? Math.trunc(v) : 0;
  if (typeof v === 'string') {
    const s = v.trim();
    if (/^[+-]?\d+(?:_\d+)*$/.test(s)) return Number(s.replace(/_/g, ''));
  }
  return 0;
}

function decode(data: Data): Dict | null {
  return parseJsonObject(data);
}

function extraOf(d: Dict, known: ReadonlySet<string>): Dict {
  const extra: Dict = {};
  for (const k of Object.keys(d)) if (!known.has(k)) extra[k] = d[k];
  return extra;
}

// ---------------------------------------------------------------- writing helpers

function float(v: number | null): string {
  return v === null ? 'null' : pyFloatRepr(v);
}

function str(v: string | null): string {
  return v === null ? 'null' : pyString(v);
}

function strList(v: readonly string[]): string {
  let out = '[';
  for (let i = 0; i < v.length; i++) {
    if (i > 0) out += ', ';
    out += pyString(v[i] as string);
  }
  return out + ']';
}

function checkId(kind: string, id: unknown): void {
  if (id !== null && typeof id !== 'string') {
    throw new ModelError(`'id' attribute of ${kind} must be a string type`, { kind, id });
  }
}

function checkState(kind: string, states: ReadonlySet<string>, state: unknown): void {
  if (typeof state !== 'string' || !states.has(state)) {
    throw new ModelError(`'${String(state)}' is not a valid ${kind} state`, { kind, state });
  }
}

function checkTime(kind: string, key: string, v: unknown, nullable: boolean): void {
  if (nullable && v === null) return;
  if (typeof v !== 'number') throw new ModelError(`'${key}' of ${kind} must be a number`, { kind, key, value: v });
}

function checkList(kind: string, key: string, v: unknown): void {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new ModelError(`'${key}' of ${kind} must be a list of strings`, { kind, key, value: v });
  }
}

function appendExtra(out: string, extra: Dict, known: ReadonlySet<string>): string {
  for (const k of Object.keys(extra)) {
    if (known.has(k)) continue;
    out += `, ${pyString(k)}: ${pythonJson(extra[k])}`;
  }
  return out;
}

// ---------------------------------------------------------------- constructors

export function newNode(fields: Partial<Node> = {}): Node {
  return {
    id: null, state: 'init', state_time: now(), created_time: null, cloud: null, provider: null,
    pool: null, type: [], allocated_to: null, az: null, region: null, public_ipv4: null,
    private_ipv4: null, public_ipv6: null, interface_ip: null, host_id: null, connection_port: 22,
    connection_type: null, username: null, host_keys: [], image_id: null, launcher: null,
    external_id: null, hostname: null, comment: null, hold_job: null, hold_expiration: null,
    resources: null, attributes: null, extra: {},
    ...fields,
  };
}

export function newNodeRequest(fields: Partial<NodeRequest> = {}): NodeRequest {
  return {
    id: null, state: 'requested', state_time: now(), declined_by: [], node_types: [], nodes: [],
    reuse: true, requestor: null, provider: null, relative_priority: 0, extra: {},
    ...fields,
  };
}

export function newImageBuild(fields: Partial<ImageBuild> = {}): ImageBuild {
  return {
    id: null, image: null, state: 'building', state_time: now(), builder: null, builder_id: null,
    formats: [], username: 'zuul',
    ...fields,
  };
}

export function newImageUpload(fields: Partial<ImageUpload> = {}): ImageUpload {
  return {
    id: null, image: null, build_id: null, provider: null, state: 'uploading', state_time: now(),
    external_id: null, external_name: null, format: null, username: 'zuul',
    ...fields,
  };
}

/** A deep-enough copy for callers that want to modify a (possibly frozen, cached) node. */
/**
 * Later Nodepool's node fields for Zuul (`python_path`, `shell_type`), written only when the
 * config sets them (a static host, a diskimage, a cloud-image): a 3.x config keeps the 3.x JSON.
 */
export function setShellFields(node: Node, s: { pythonPath: string | null; shellType: string | null }): void {
  if (s.pythonPath === null) delete node.extra['python_path'];
  else node.extra['python_path'] = s.pythonPath;
  if (s.shellType === null) delete node.extra['shell_type'];
  else node.extra['shell_type'] = s.shellType;
}

export function cloneNode(n: Readonly<Node>): Node {
  return {
    ...n,
    type: [...n.type],
    host_keys: [...n.host_keys],
    connection_port: typeof n.connection_port === 'object' ? { ...n.connection_port } : n.connection_port,
    resources: n.resources === null ? null : { ...n.resources },
    attributes: n.attributes === null ? null : { ...n.attributes },
    extra: { ...n.extra },
  };
}

export function cloneNodeRequest(r: Readonly<NodeRequest>): NodeRequest {
  return {
    ...r,
    declined_by: [...r.declined_by],
    node_types: [...r.node_types],
    nodes: [...r.nodes],
    extra: { ...r.extra },
  };
}

// ---------------------------------------------------------------- Node

/** Node fields from a decoded dict (Nodepool's `Node.updateFromDict`); null if unusable. */
export function nodeFromDict(id: string | null, d: Dict): Node | null {
  const state = d['state'];
  if (typeof state !== 'string' || !nodeStates.has(state)) return null;
  let port: unknown = has(d, 'connection_port') ? d['connection_port'] : has(d, 'ssh_port') ? d['ssh_port'] : 22;
  if (typeof port === 'string' && /^\d+$/.test(port)) port = Number(port);
  const connectionPort = typeof port === 'number' || isPlainObject(port) ? port : 22;
  const hold = d['hold_expiration'];
  const resources = d['resources'];
  const attributes = d['attributes'];
  return {
    id,
    state: state as NodeState,
    state_time: num(d['state_time'], 0),
    created_time: optNum(d['created_time']),
    cloud: optStr(d['cloud']),
    provider: optStr(d['provider']),
    pool: optStr(d['pool']),
    type: asList(d['type']),
    allocated_to: optStr(d['allocated_to']),
    az: optStr(d['az']),
    region: optStr(d['region']),
    public_ipv4: optStr(d['public_ipv4']),
    private_ipv4: optStr(d['private_ipv4']),
    public_ipv6: optStr(d['public_ipv6']),
    interface_ip: optStr(d['interface_ip']),
    host_id: optStr(d['host_id']),
    connection_port: connectionPort,
    connection_type: optStr(d['connection_type']),
    username: has(d, 'username') ? optStr(d['username']) : 'zuul',
    host_keys: asList(d['host_keys']),
    image_id: optStr(d['image_id']),
    launcher: optStr(d['launcher']),
    external_id: optStr(d['external_id']),
    hostname: optStr(d['hostname']),
    comment: optStr(d['comment']),
    hold_job: optStr(d['hold_job']),
    hold_expiration: hold === null || hold === undefined ? null : pyInt(hold),
    resources: isPlainObject(resources) ? (resources as NodeResources) : null,
    attributes: isPlainObject(attributes) ? attributes : null,
    extra: extraOf(d, nodeKeySet),
  };
}

export function nodeFromData(id: string, data: Data): Node | null {
  const d = decode(data);
  return d === null ? null : nodeFromDict(id, d);
}

export function nodeToJson(node: Node): string {
  checkId('Node', node.id);
  checkState('Node', nodeStates, node.state);
  checkTime('Node', 'state_time', node.state_time, false);
  checkTime('Node', 'created_time', node.created_time, true);
  checkList('Node', 'type', node.type);
  checkList('Node', 'host_keys', node.host_keys);
  const port = pythonJson(node.connection_port);
  let out = `{"state": ${pyString(node.state)}, "state_time": ${float(node.state_time)}`
    + `, "cloud": ${str(node.cloud)}, "provider": ${str(node.provider)}, "pool": ${str(node.pool)}`
    + `, "type": ${strList(node.type)}, "allocated_to": ${str(node.allocated_to)}`
    + `, "az": ${str(node.az)}, "region": ${str(node.region)}`
    + `, "public_ipv4": ${str(node.public_ipv4)}, "private_ipv4": ${str(node.private_ipv4)}`
    + `, "public_ipv6": ${str(node.public_ipv6)}, "host_id": ${str(node.host_id)}`
    + `, "interface_ip": ${str(node.interface_ip)}, "connection_port": ${port}, "ssh_port": ${port}`
    + `, "image_id": ${str(node.image_id)}, "launcher": ${str(node.launcher)}`
    + `, "created_time": ${float(node.created_time)}, "external_id": ${str(node.external_id)}`
    + `, "hostname": ${str(node.hostname)}, "comment": ${str(node.comment)}`
    + `, "hold_job": ${str(node.hold_job)}, "host_keys": ${strList(node.host_keys)}`
    + `, "username": ${str(node.username)}, "connection_type": ${str(node.connection_type)}`
    + `, "hold_expiration": ${pythonJson(node.hold_expiration)}`
    + `, "resources": ${pythonJson(node.resources)}, "attributes": ${pythonJson(node.attributes)}`;
  out = appendExtra(out, node.extra, nodeKeySet);
  return out + '}';
}

export function nodeToData(node: Node): Buffer {
  return Buffer.from(nodeToJson(node), 'latin1');
}

// ---------------------------------------------------------------- NodeRequest

export function requestFromDict(id: string | null, d: Dict): NodeRequest | null {
  const state = d['state'];
  if (typeof state !== 'string' || !requestStates.has(state)) return null;
  return {
    id,
    state: state as RequestState,
    state_time: num(d['state_time'], 0),
    declined_by: asList(d['declined_by']),
    node_types: asList(d['node_types']),
    nodes: asList(d['nodes']),
    reuse: has(d, 'reuse') ? Boolean(d['reuse']) : true,
    requestor: optStr(d['requestor']),
    provider: optStr(d['provider']),
    relative_priority: num(d['relative_priority'], 0),
    extra: extraOf(d, requestKeySet),
  };
}

export function requestFromData(id: string, data: Data): NodeRequest | null {
  const d = decode(data);
  return d === null ? null : requestFromDict(id, d);
}

export function requestToJson(req: NodeRequest): string {
  checkId('NodeRequest', req.id);
  checkState('NodeRequest', requestStates, req.state);
  checkTime('NodeRequest', 'state_time', req.state_time, false);
  checkList('NodeRequest', 'declined_by', req.declined_by);
  checkList('NodeRequest', 'node_types', req.node_types);
  checkList('NodeRequest', 'nodes', req.nodes);
  let out = `{"state": ${pyString(req.state)}, "state_time": ${float(req.state_time)}`
    + `, "declined_by": ${strList(req.declined_by)}, "node_types": ${strList(req.node_types)}`
    + `, "nodes": ${strList(req.nodes)}, "reuse": ${req.reuse ? 'true' : 'false'}`
    + `, "requestor": ${str(req.requestor)}, "provider": ${str(req.provider)}`
    + `, "relative_priority": ${pythonJson(req.relative_priority)}`;
  out = appendExtra(out, req.extra, requestKeySet);
  return out + '}';
}

export function requestToData(req: NodeRequest): Buffer {
  return Buffer.from(requestToJson(req), 'latin1');
}

// ---------------------------------------------------------------- ImageBuild

export function buildFromData(image: string, id: string, data: Data): ImageBuild | null {
  const d = decode(data);
  if (d === null) return null;
  const state = d['state'];
  if (typeof state !== 'string' || !buildStates.has(state)) return null;
  const formats = d['formats'];
  return {
    id,
    image,
    state: state as BuildState,
    state_time: num(d['state_time'], 0),
    builder: optStr(d['builder']),
    builder_id: optStr(d['builder_id']),
    // Nodepool only splits a non-empty string.
    formats: typeof formats === 'string' && formats !== '' ? formats.split(',') : [],
    username: has(d, 'username') ? (optStr(d['username']) ?? 'zuul') : 'zuul',
  };
}

export function buildToJson(b: ImageBuild): string {
  checkId('ImageBuild', b.id);
  checkState('ImageBuild', buildStates, b.state);
  checkTime('ImageBuild', 'state_time', b.state_time, false);
  checkList('ImageBuild', 'formats', b.formats);
  let out = `{"state": ${pyString(b.state)}, "state_time": ${float(b.state_time)}`;
  if (b.builder !== null) out += `, "builder": ${pyString(b.builder)}`;
  if (b.builder_id !== null) out += `, "builder_id": ${pyString(b.builder_id)}`;
  if (b.formats.length > 0) out += `, "formats": ${pyString([...b.formats].sort().join(','))}`;
  out += `, "username": ${str(b.username)}}`;
  return out;
}

export function buildToData(b: ImageBuild): Buffer {
  return Buffer.from(buildToJson(b), 'latin1');
}

// ---------------------------------------------------------------- ImageUpload

export function uploadFromData(
  image: string, buildId: string, provider: string, id: string, data: Data,
): ImageUpload | null {
  const d = decode(data);
  if (d === null) return null;
  const state = d['state'];
  if (typeof state !== 'string' || !uploadStates.has(state)) return null;
  return {
    id,
    image,
    build_id: buildId,
    provider,
    state: state as UploadState,
    state_time: num(d['state_time'], 0),
    external_id: optStr(d['external_id']),
    external_name: optStr(d['external_name']),
    format: optStr(d['format']),
    username: has(d, 'username') ? (optStr(d['username']) ?? 'zuul') : 'zuul',
  };
}

export function uploadToJson(u: ImageUpload): string {
  checkId('ImageUpload', u.id);
  checkState('ImageUpload', uploadStates, u.state);
  checkTime('ImageUpload', 'state_time', u.state_time, false);
  return `{"state": ${pyString(u.state)}, "state_time": ${float(u.state_time)}`
    + `, "external_id": ${str(u.external_id)}, "external_name": ${str(u.external_name)}`
    + `, "format": ${str(u.format)}, "username": ${str(u.username)}}`;
}

export function uploadToData(u: ImageUpload): Buffer {
  return Buffer.from(uploadToJson(u), 'latin1');
}

// ---------------------------------------------------------------- Launcher

export function launcherFromData(data: Data): LauncherInfo | null {
  const d = decode(data);
  if (d === null) return null;
  const id = d['id'];
  if (typeof id !== 'string') return null;
  const info: LauncherInfo = {
    id,
    provider_name: optStr(d['provider_name']) ?? 'unknown',
    supported_labels: [...new Set(asList(d['supported_labels']))].sort(),
  };
  const priority = d['priority'];
  if (typeof priority === 'number' && Number.isFinite(priority)) {
    info.priority = priority;
    info.paused = d['paused'] === true;
  }
  return info;
}

export function launcherToJson(l: LauncherInfo): string {
  if (typeof l.id !== 'string') throw new ModelError("'id' attribute of Launcher must be a string type", { id: l.id });
  checkList('Launcher', 'supported_labels', l.supported_labels);
  // A Python set written as a sorted list.
  const labels = [...new Set(l.supported_labels)].sort();
  const base = `{"id": ${pyString(l.id)}, "provider_name": ${str(l.provider_name)}, "supported_labels": ${strList(labels)}`;
  if (l.priority === undefined) return `${base}}`;
  return `${base}, "priority": ${pythonJson(l.priority)}, "paused": ${l.paused === true ? 'true' : 'false'}}`;
}

export function launcherToData(l: LauncherInfo): Buffer {
  return Buffer.from(launcherToJson(l), 'latin1');
}

/** Nodepool's Launcher equality: same id and same label set (provider_name is not compared). */
export function launcherEquals(a: LauncherInfo, b: LauncherInfo): boolean {
  if (a.id !== b.id) return false;
  const la = new Set(a.supported_labels);
  const lb = new Set(b.supported_labels);
  if (la.size !== lb.size) return false;
  for (const x of la) if (!lb.has(x)) return false;
  return true;
}
