// Nova (compute API v2.1, microversions up to 2.95 negotiated by header): servers with metadata,
// addresses, faults and actions; flavors; availability zones; limits; keypairs; the image proxy.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  HttpError, isoSeconds, readJson, serviceError, isUuid,
  type SimRequest, type SimResponse, type TokenInfo,
} from './http.js';
import type { SimFlavor, SimImage, SimNetwork, SimServer } from './model.js';
import type { OpenStackSim } from './sim.js';
import { glanceImage } from './glance.js';
import { ed25519KeyPair } from './ssh.js';

const MAX_MICROVERSION = [2, 95] as const;

function err(status: number, message: string): HttpError {
  return new HttpError(serviceError('compute', status, message));
}

/** The microversion a request asked for (2.1 when it did not), as [major, minor]. */
function microversion(req: SimRequest): [number, number] {
  const legacy = req.headers['x-openstack-nova-api-version'];
  const modern = req.headers['openstack-api-version'];
  let text: string | undefined;
  if (typeof modern === 'string') {
    const m = /compute\s+(\S+)/i.exec(modern);
    text = m?.[1];
  }
  if (text === undefined && typeof legacy === 'string') text = legacy.trim();
  if (text === undefined) return [2, 1];
  if (text === 'latest') return [MAX_MICROVERSION[0], MAX_MICROVERSION[1]];
  const m = /^(\d+)\.(\d+)$/.exec(text);
  if (!m) throw err(400, `Invalid format for API version ${text}`);
  const v: [number, number] = [Number(m[1]), Number(m[2])];
  if (v[0] !== 2 || v[1] < 1 || v[1] > MAX_MICROVERSION[1]) {
    throw new HttpError({
      status: 406,
      body: { computeFault: { code: 406, message: `Version ${text} is not supported by the API. Minimum is 2.1 and maximum is 2.95.` } },
    });
  }
  return v;
}

function atLeast(v: [number, number], minor: number): boolean {
  return v[1] >= minor;
}

function versionDoc(sim: OpenStackSim, id: 'v2.0' | 'v2.1'): Record<string, unknown> {
  return {
    id,
    status: id === 'v2.1' ? 'CURRENT' : 'SUPPORTED',
    version: id === 'v2.1' ? '2.95' : '',
    min_version: id === 'v2.1' ? '2.1' : '',
    updated: id === 'v2.1' ? '2013-07-23T11:33:21Z' : '2011-01-21T11:33:21Z',
    links: [{ rel: 'self', href: `${sim.base}/compute/${id === 'v2.1' ? 'v2.1' : 'v2'}/` }],
  };
}

export async function handleCompute(sim: OpenStackSim, req: SimRequest, headers: Record<string, string>): Promise<SimResponse> {
  const path = req.path.replace(/\/+$/, '') || '/';
  if (req.method === 'GET' && path === '/') return { status: 200, body: { versions: [versionDoc(sim, 'v2.0'), versionDoc(sim, 'v2.1')] } };
  if (req.method === 'GET' && path === '/v2.1') {
    return {
      status: 200,
      body: {
        version: {
          ...versionDoc(sim, 'v2.1'),
          links: [{ rel: 'self', href: `${sim.base}/compute/v2.1/` }, { rel: 'describedby', type: 'text/html', href: 'http://docs.openstack.org/' }],
          'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.compute+json;version=2.1' }],
        },
      },
    };
  }
  const m = /^\/v2(?:\.1)?(?:\/[0-9a-f]{32})?(\/.*)$/.exec(path);
  if (!m) return serviceError('compute', 404, 'The resource could not be found.');
  const token = sim.requireAuth(req);
  const mv = microversion(req);
  const mvText = `${mv[0]}.${mv[1]}`;
  headers['OpenStack-API-Version'] = `compute ${mvText}`;
  headers['X-OpenStack-Nova-API-Version'] = mvText;
  headers.Vary = 'OpenStack-API-Version, X-OpenStack-Nova-API-Version';
  const rest = m[1] ?? '/';
  const seg = rest.split('/').filter((s) => s !== '').map(decodeURIComponent);
  const [a, b, c] = seg;
  const M = req.method;

  if (a === 'servers') {
    if (seg.length === 1 && M === 'GET') return listServers(sim, req, token, mv, false);
    if (seg.length === 2 && b === 'detail' && M === 'GET') return listServers(sim, req, token, mv, true);
    if (seg.length === 1 && M === 'POST') return createServer(sim, req, token, mv);
    if (b !== undefined && b !== 'detail') {
      const s = findServer(sim, token, b);
      if (seg.length === 2 && M === 'GET') return { status: 200, body: { server: serverJson(sim, s, mv) } };
      if (seg.length === 2 && M === 'DELETE') return deleteServer(sim, s);
      if (seg.length === 3 && c === 'action' && M === 'POST') return serverAction(sim, req, s);
      if (seg.length === 3 && c === 'metadata' && M === 'GET') return { status: 200, body: { metadata: s.metadata } };
      if (seg.length === 3 && c === 'ips' && M === 'GET') return { status: 200, body: { addresses: addresses(sim, s) } };
    }
  }
  if (a === 'flavors' && M === 'GET') {
    const flavors = [...sim.state.flavors.values()];
    if (seg.length === 1) return { status: 200, body: { flavors: flavors.map((f) => ({ id: f.id, name: f.name, links: flavorLinks(sim, f) })) } };
    if (seg.length === 2 && b === 'detail') return { status: 200, body: { flavors: flavors.map((f) => flavorJson(sim, f, mv)) } };
    if (seg.length === 2 && b !== undefined) {
      const f = sim.state.flavors.get(b);
      if (!f) throw err(404, `Flavor ${b} could not be found.`);
      return { status: 200, body: { flavor: flavorJson(sim, f, mv) } };
    }
    if (seg.length === 3 && c === 'os-extra_specs') return { status: 200, body: { extra_specs: {} } };
  }
  if (a === 'os-availability-zone' && M === 'GET' && (seg.length === 1 || b === 'detail')) {
    return {
      status: 200,
      body: { availabilityZoneInfo: sim.state.azs.map((z) => ({ zoneName: z, zoneState: { available: true }, hosts: null })) },
    };
  }
  if (a === 'limits' && M === 'GET' && seg.length === 1) return limits(sim, token, mv);
  if (a === 'os-keypairs') return keypairs(sim, req, token, mv, b);
  if (a === 'images' && M === 'GET') return imageProxy(sim, token, seg);
  if (a === 'extensions' && M === 'GET') return { status: 200, body: { extensions: [] } };
  return serviceError('compute', 404, 'The resource could not be found.');
}

// ---- servers ---------------------------------------------------------------------------------

function findServer(sim: OpenStackSim, token: TokenInfo, id: string): SimServer {
  const s = sim.state.servers.get(id);
  if (!s || s.projectId !== token.projectId) throw err(404, `Instance ${id} could not be found.`);
  return s;
}

function serverLinks(sim: OpenStackSim, s: SimServer): Record<string, string>[] {
  return [
    { rel: 'self', href: `${sim.base}/compute/v2.1/servers/${s.id}` },
    { rel: 'bookmark', href: `${sim.base}/compute/servers/${s.id}` },
  ];
}

function flavorLinks(sim: OpenStackSim, f: SimFlavor): Record<string, string>[] {
  return [
    { rel: 'self', href: `${sim.base}/compute/v2.1/flavors/${f.id}` },
    { rel: 'bookmark', href: `${sim.base}/compute/flavors/${f.id}` },
  ];
}

function flavorJson(sim: OpenStackSim, f: SimFlavor, mv: [number, number]): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: f.id, name: f.name, ram: f.ram, disk: f.disk, vcpus: f.vcpus, swap: f.swap === 0 ? '' : f.swap,
    'OS-FLV-EXT-DATA:ephemeral': f.ephemeral, 'OS-FLV-DISABLED:disabled': false,
    'os-flavor-access:is_public': f.isPublic, rxtx_factor: 1.0, links: flavorLinks(sim, f),
  };
  if (atLeast(mv, 55)) out.description = null;
  if (atLeast(mv, 61)) out.extra_specs = {};
  return out;
}

/** Nova's `addresses`: per network name, fixed then floating, once networking is up. */
export function addresses(sim: OpenStackSim, s: SimServer): Record<string, Record<string, unknown>[]> {
  const out: Record<string, Record<string, unknown>[]> = {};
  if (s.status !== 'ACTIVE' || sim.faults.noAddresses) return out;
  for (const pid of s.portIds) {
    const port = sim.state.ports.get(pid);
    if (!port) continue;
    const net = sim.state.networks.get(port.networkId);
    const list = out[net?.name ?? port.networkId] ?? [];
    list.push({ version: 4, addr: port.ip, 'OS-EXT-IPS:type': 'fixed', 'OS-EXT-IPS-MAC:mac_addr': port.mac });
    for (const fip of sim.state.floatingIps.values()) {
      if (fip.portId === port.id) {
        list.push({ version: 4, addr: fip.address, 'OS-EXT-IPS:type': 'floating', 'OS-EXT-IPS-MAC:mac_addr': port.mac });
      }
    }
    out[net?.name ?? port.networkId] = list;
  }
  return out;
}

const POWER = { NOSTATE: 0, RUNNING: 1 } as const;

export function serverJson(sim: OpenStackSim, s: SimServer, mv: [number, number]): Record<string, unknown> {
  const flavor = sim.state.flavors.get(s.flavorId);
  const out: Record<string, unknown> = {
    id: s.id,
    name: s.name,
    status: s.status,
    tenant_id: s.projectId,
    user_id: s.userId,
    metadata: s.metadata,
    hostId: s.status === 'ACTIVE' ? s.hostId : '',
    image: s.imageId !== null && s.volume === null
      ? { id: s.imageId, links: [{ rel: 'bookmark', href: `${sim.base}/compute/images/${s.imageId}` }] }
      : '',
    flavor: atLeast(mv, 47)
      ? {
        vcpus: flavor?.vcpus ?? 0, ram: flavor?.ram ?? 0, disk: flavor?.disk ?? 0, ephemeral: 0, swap: 0,
        original_name: flavor?.name ?? s.flavorId, extra_specs: {},
      }
      : { id: s.flavorId, links: [{ rel: 'bookmark', href: `${sim.base}/compute/flavors/${s.flavorId}` }] },
    created: isoSeconds(s.createdAt),
    updated: isoSeconds(s.updatedAt),
    addresses: addresses(sim, s),
    accessIPv4: '',
    accessIPv6: '',
    links: serverLinks(sim, s),
    'OS-DCF:diskConfig': 'MANUAL',
    progress: s.status === 'BUILD' ? 0 : 100,
    'OS-EXT-AZ:availability_zone': s.status === 'BUILD' && !s.launchedAt ? '' : s.az,
    config_drive: s.configDrive ? 'True' : '',
    key_name: s.keyName,
    'OS-SRV-USG:launched_at': s.launchedAt ? s.launchedAt.toISOString().replace('Z', '') : null,
    'OS-SRV-USG:terminated_at': null,
    security_groups: s.status === 'ERROR' ? undefined : s.securityGroups.map((name) => ({ name })),
    'OS-EXT-STS:task_state': s.taskState,
    'OS-EXT-STS:vm_state': s.vmState,
    'OS-EXT-STS:power_state': s.status === 'ACTIVE' ? POWER.RUNNING : POWER.NOSTATE,
    'os-extended-volumes:volumes_attached': s.volume
      ? [atLeast(mv, 3) ? { id: s.volume.id, delete_on_termination: s.volume.deleteOnTermination } : { id: s.volume.id }]
      : [],
  };
  if (out.security_groups === undefined) delete out.security_groups;
  if (s.status === 'ERROR' && s.fault) {
    out.fault = { code: s.fault.code, created: isoSeconds(s.fault.created), message: s.fault.message, details: s.fault.details };
  }
  if (atLeast(mv, 9)) out.locked = false;
  if (atLeast(mv, 19)) out.description = null;
  if (atLeast(mv, 26)) out.tags = [];
  return out;
}

function listServers(sim: OpenStackSim, req: SimRequest, token: TokenInfo, mv: [number, number], detail: boolean): SimResponse {
  let list = [...sim.state.servers.values()].filter((s) => s.projectId === token.projectId);
  const q = req.query;
  const name = q.get('name');
  if (name) {
    let re: RegExp;
    try { re = new RegExp(name); } catch { throw err(400, `Invalid regular expression ${name}`); }
    list = list.filter((s) => re.test(s.name));
  }
  const status = q.get('status');
  if (status) list = list.filter((s) => s.status === status.toUpperCase());
  // Nova's default order: newest first
  list.sort((x, y) => y.createdAt.getTime() - x.createdAt.getTime() || (x.id < y.id ? 1 : -1));
  const marker = q.get('marker');
  if (marker) {
    const i = list.findIndex((s) => s.id === marker);
    if (i < 0) throw err(400, `marker [${marker}] not found`);
    list = list.slice(i + 1);
  }
  const limitText = q.get('limit');
  const limit = Math.min(limitText ? Number(limitText) : 1000, 1000);
  if (!Number.isInteger(limit) || limit < 0) throw err(400, 'Invalid input for query parameters limit.');
  const page = list.slice(0, limit);
  const body: Record<string, unknown> = {
    servers: page.map((s) => (detail ? serverJson(sim, s, mv) : { id: s.id, name: s.name, links: serverLinks(sim, s) })),
  };
  const last = page[page.length - 1];
  if (page.length === limit && list.length > limit && last) {
    body.servers_links = [{
      rel: 'next',
      href: `${sim.base}/compute/v2.1/servers${detail ? '/detail' : ''}?limit=${limit}&marker=${last.id}`,
    }];
  }
  return { status: 200, body };
}

function asObj(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : null;
}

function refId(ref: unknown): string {
  const s = typeof ref === 'string' ? ref : typeof ref === 'number' ? String(ref) : '';
  return s.includes('/') ? s.slice(s.lastIndexOf('/') + 1) : s;
}

function usage(sim: OpenStackSim, projectId: string): { instances: number; cores: number; ram: number } {
  const u = { instances: 0, cores: 0, ram: 0 };
  for (const s of sim.state.servers.values()) {
    if (s.projectId !== projectId) continue;
    const f = sim.state.flavors.get(s.flavorId);
    u.instances += 1;
    u.cores += f?.vcpus ?? 0;
    u.ram += f?.ram ?? 0;
  }
  return u;
}

function visibleImage(sim: OpenStackSim, token: TokenInfo, id: string): SimImage | null {
  const im = sim.state.images.get(id);
  if (!im || im.status === 'deleted') return null;
  return im.visibility === 'public' || im.owner === token.projectId ? im : null;
}

async function createServer(sim: OpenStackSim, req: SimRequest, token: TokenInfo, mv: [number, number]): Promise<SimResponse> {
  const body = await readJson(req);
  const spec = asObj(body.server);
  if (!spec) throw err(400, "Invalid input for field/attribute server. Value: None. None is not of type 'object'");
  const name = typeof spec.name === 'string' ? spec.name : '';
  if (name.trim() === '' || name.length > 255) {
    throw err(400, `Invalid input for field/attribute name. Value: ${String(spec.name)}. '${String(spec.name)}' does not match '^(?! )[a-zA-Z0-9. _-]+(?<! )$'`);
  }
  const flavorRef = refId(spec.flavorRef);
  const flavor = sim.state.flavors.get(flavorRef);
  if (!flavor) throw err(400, `Flavor ${flavorRef} could not be found.`);

  // boot source: imageRef, or a block device mapping booting from an image-backed volume
  let imageId: string | null = null;
  let volume: SimServer['volume'] = null;
  const bdms = Array.isArray(spec.block_device_mapping_v2) ? spec.block_device_mapping_v2 : [];
  const bootBdm = bdms.map(asObj).find((b) => b !== null && Number(b.boot_index) === 0) ?? null;
  if (bootBdm) {
    if (bootBdm.source_type !== 'image' || bootBdm.destination_type !== 'volume') {
      throw err(400, 'Block Device Mapping is Invalid: only image to volume boot is supported by this simulator.');
    }
    const size = Number(bootBdm.volume_size);
    if (!Number.isInteger(size) || size <= 0) throw err(400, 'Block Device Mapping is Invalid: volume_size must be a positive integer.');
    imageId = refId(bootBdm.uuid);
    volume = { id: randomUUID(), size, deleteOnTermination: bootBdm.delete_on_termination === true };
  } else {
    imageId = refId(spec.imageRef);
    if (imageId === '') throw err(400, 'Block Device Mapping is Invalid: You specified more local devices than the limit allows');
  }
  const image = visibleImage(sim, token, imageId);
  if (!image) throw err(400, `Image ${imageId} could not be found.`);
  if (image.status !== 'active') throw err(400, `Image ${imageId} is not active.`);

  const az = typeof spec.availability_zone === 'string' && spec.availability_zone !== ''
    ? spec.availability_zone.split(':')[0] ?? '' : null;
  if (az !== null && !sim.state.azs.includes(az)) throw err(400, 'The requested availability zone is not available');

  const keyName = typeof spec.key_name === 'string' ? spec.key_name : null;
  if (keyName !== null && !sim.state.keypairs.has(`${token.userId}/${keyName}`)) throw err(400, 'Invalid key_name provided.');

  const sgs: string[] = [];
  for (const g of Array.isArray(spec.security_groups) ? spec.security_groups : []) {
    const sgName = String(asObj(g)?.name ?? '');
    const found = [...sim.state.securityGroups.values()].some((x) => (x.name === sgName || x.id === sgName)
      && x.projectId === token.projectId);
    if (!found) throw err(400, `Security group ${sgName} not found for project ${token.projectId}.`);
    sgs.push(sgName);
  }

  let userData: string | null = null;
  if (spec.user_data !== undefined && spec.user_data !== null) {
    const ud = String(spec.user_data);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(ud.replace(/\s+/g, '')) || ud.length % 4 === 1) {
      throw err(400, 'User data needs to be valid base 64.');
    }
    if (ud.length > 65535) throw err(400, "Invalid input for field/attribute user_data. Value: ... is too long");
    userData = ud;
  }

  const metadata: Record<string, string> = {};
  const meta = spec.metadata === undefined ? {} : asObj(spec.metadata);
  if (!meta) throw err(400, 'Invalid input for field/attribute metadata. Value: not a dict.');
  for (const [k, v] of Object.entries(meta)) {
    if (typeof v !== 'string' || k.length === 0 || k.length > 255 || v.length > 255) {
      throw err(400, `Invalid input for field/attribute metadata. Value: {${k}: ${String(v)}}.`);
    }
    metadata[k] = v;
  }
  if (Object.keys(metadata).length > sim.state.limits.serverMeta) {
    throw err(403, `Quota exceeded for metadata_items: Requested ${Object.keys(metadata).length}, but already used 0 of ${sim.state.limits.serverMeta} metadata_items`);
  }

  // networks: explicit uuids, or every network the project may use when there is just one
  let nets: SimNetwork[] = [];
  if (spec.networks === 'none') {
    nets = [];
  } else if (Array.isArray(spec.networks)) {
    for (const n of spec.networks) {
      const uuid = String(asObj(n)?.uuid ?? '');
      const net = sim.state.networks.get(uuid);
      if (!net || (!net.shared && !net.external && net.projectId !== token.projectId)) {
        throw err(400, `Network ${uuid} could not be found.`);
      }
      nets.push(net);
    }
  } else if (spec.networks === undefined || spec.networks === 'auto') {
    if (spec.networks === undefined && atLeast(mv, 37)) {
      throw err(400, "Invalid input for field/attribute server. Value: ... 'networks' is a required property");
    }
    const usable = [...sim.state.networks.values()].filter((n) => !n.external && (n.shared || n.projectId === token.projectId));
    if (usable.length > 1) throw err(409, 'Multiple possible networks found, use a Network ID to be more specific.');
    nets = usable;
  } else {
    throw err(400, 'Invalid input for field/attribute networks.');
  }

  // quota, counted over every server of the project until it is gone
  const used = usage(sim, token.projectId);
  const lim = sim.state.limits;
  if (sim.faults.quotaExceeded) {
    throw err(403, `Quota exceeded for instances: Requested 1, but already used ${lim.instances} of ${lim.instances} instances`);
  }
  for (const [res, need, limit] of [
    ['instances', 1, lim.instances], ['cores', flavor.vcpus, lim.cores], ['ram', flavor.ram, lim.ram],
  ] as const) {
    const have = used[res];
    if (limit >= 0 && have + need > limit) {
      throw err(403, `Quota exceeded for ${res}: Requested ${need}, but already used ${have} of ${limit} ${res}`);
    }
  }

  const now = new Date();
  const az2 = az ?? sim.state.azs[Math.floor(Math.random() * sim.state.azs.length)] ?? 'nova';
  const host = `compute-${1 + Math.floor(Math.random() * 4)}`;
  const s: SimServer = {
    id: randomUUID(), name, projectId: token.projectId, userId: token.userId, flavorId: flavor.id,
    imageId, volume, metadata, keyName, securityGroups: sgs.length ? sgs : ['default'], az: az2, userData,
    configDrive: spec.config_drive === true || spec.config_drive === 'True' || spec.config_drive === 'true',
    hostId: createHash('sha224').update(`${token.projectId}${host}`).digest('hex'),
    status: 'BUILD', vmState: 'building', taskState: 'scheduling', fault: null, portIds: [],
    createdAt: now, updatedAt: now, launchedAt: null, deletingSince: null,
    adminPass: randomBytes(9).toString('base64url'), hostKey: null,
  };
  for (const net of nets) {
    const portId = randomUUID();
    sim.state.ports.set(portId, {
      id: portId, name: '', networkId: net.id, subnetId: net.subnetId, projectId: token.projectId, deviceId: s.id,
      deviceOwner: `compute:${az2}`, status: 'DOWN', ip: sim.allocateIp(net),
      mac: `fa:16:3e:${randomBytes(3).toString('hex').match(/../g)?.join(':') ?? '00:00:00'}`, bindingHost: '', createdAt: now,
    });
    s.portIds.push(portId);
  }
  sim.state.servers.set(s.id, s);
  sim.scheduleActivation(s);
  return {
    status: 202,
    headers: { Location: `${sim.base}/compute/v2.1/servers/${s.id}` },
    body: {
      server: {
        id: s.id, links: serverLinks(sim, s), 'OS-DCF:diskConfig': 'MANUAL',
        security_groups: s.securityGroups.map((n) => ({ name: n })), adminPass: s.adminPass,
      },
    },
  };
}

/** BUILD → ACTIVE or ERROR, after the boot delay. */
export function activateServer(sim: OpenStackSim, id: string, result: 'ACTIVE' | 'ERROR'): void {
  const s = sim.state.servers.get(id);
  if (!s || s.status !== 'BUILD' || s.deletingSince) return;
  const now = new Date();
  s.updatedAt = now;
  if (result === 'ERROR') {
    s.status = 'ERROR';
    s.vmState = 'error';
    s.taskState = null;
    s.fault = {
      code: 500, created: now, message: 'No valid host was found. There are not enough hosts available.',
      details: 'Traceback (most recent call last):\n  File "/usr/lib/python3/dist-packages/nova/conductor/manager.py", line 1580, in schedule_and_build_instances\nnova.exception.NoValidHost: No valid host was found.\n',
    };
    for (const pid of s.portIds) sim.state.ports.delete(pid);
    s.portIds = [];
    return;
  }
  s.status = 'ACTIVE';
  s.vmState = 'active';
  s.taskState = null;
  s.launchedAt = now;
  for (const pid of s.portIds) {
    const p = sim.state.ports.get(pid);
    if (p) p.status = 'ACTIVE';
  }
  if (sim.ssh) {
    const ips = s.portIds.map((pid) => sim.state.ports.get(pid)?.ip).filter((x): x is string => x !== undefined);
    s.hostKey = sim.ssh.open(s.id, ips);
  }
}

function deleteServer(sim: OpenStackSim, s: SimServer): SimResponse {
  // a repeated delete of a server stuck in `deleting` is another attempt, as in Nova
  s.deletingSince ??= new Date();
  s.taskState = 'deleting';
  s.updatedAt = new Date();
  sim.scheduleDeletion(s);
  return { status: 204 };
}

/** The end of a delete: the server, its boot volume and its ports go (ports may leak on purpose). */
export function finishDelete(sim: OpenStackSim, id: string): void {
  const s = sim.state.servers.get(id);
  if (!s) return;
  sim.state.servers.delete(id);
  sim.ssh?.close(id);
  for (const pid of s.portIds) {
    const p = sim.state.ports.get(pid);
    if (!p) continue;
    if (sim.faults.leakPortsOnDelete) {
      p.status = 'DOWN';
    } else {
      sim.state.ports.delete(pid);
    }
    for (const fip of sim.state.floatingIps.values()) {
      if (fip.portId === pid && !sim.faults.leakPortsOnDelete) {
        fip.portId = null;
        fip.fixedIp = null;
        fip.updatedAt = new Date();
      }
    }
  }
}

async function serverAction(sim: OpenStackSim, req: SimRequest, s: SimServer): Promise<SimResponse> {
  const body = await readJson(req);
  if ('os-getConsoleOutput' in body) {
    if (s.status === 'BUILD') throw err(409, `Cannot 'os-getConsoleOutput' instance ${s.id} while it is in vm_state building`);
    const opts = asObj(body['os-getConsoleOutput']) ?? {};
    const ip = s.portIds.map((pid) => sim.state.ports.get(pid)?.ip).find((x) => x !== undefined) ?? 'none';
    let lines = [
      '[    0.000000] Linux version 6.1.0-sim (openstack-sim) #1 SMP PREEMPT_DYNAMIC',
      `[    0.000000] Command line: BOOT_IMAGE=/vmlinuz root=LABEL=cloudimg-rootfs ro console=ttyS0`,
      `[    1.204118] cloud-init[312]: Cloud-init v. 23.1 running 'init' for ${s.name} (${s.id})`,
      `[    1.733410] cloud-init[312]: ci-info: | eth0 | True | ${ip} | 255.255.0.0 | global |`,
      s.status === 'ACTIVE' ? `${s.name} login: ` : `[    2.000000] Kernel panic - not syncing: VFS: Unable to mount root fs`,
    ];
    const length = opts.length === undefined || opts.length === null ? null : Number(opts.length);
    if (length !== null && Number.isFinite(length) && length >= 0) lines = lines.slice(-length);
    return { status: 200, body: { output: `${lines.join('\n')}\n` } };
  }
  if ('os-start' in body || 'os-stop' in body || 'reboot' in body) return { status: 202 };
  throw err(400, 'There is no such action: ' + Object.keys(body).join(','));
}

// ---- limits, keypairs, image proxy -------------------------------------------------------------

function limits(sim: OpenStackSim, token: TokenInfo, mv: [number, number]): SimResponse {
  const l = sim.state.limits;
  const u = usage(sim, token.projectId);
  const absolute: Record<string, number> = {
    maxServerMeta: l.serverMeta, maxPersonality: 5, maxPersonalitySize: 10240, maxImageMeta: 128,
    maxTotalKeypairs: l.keypairs, maxServerGroups: 10, maxServerGroupMembers: 10,
    maxTotalCores: l.cores, maxTotalInstances: l.instances, maxTotalRAMSize: l.ram,
    totalCoresUsed: u.cores, totalInstancesUsed: u.instances, totalRAMUsed: u.ram, totalServerGroupsUsed: 0,
  };
  if (!atLeast(mv, 36)) {
    const fips = [...sim.state.floatingIps.values()].filter((f) => f.projectId === token.projectId).length;
    Object.assign(absolute, {
      maxSecurityGroupRules: 20, maxSecurityGroups: 10, maxTotalFloatingIps: l.floatingIps,
      totalSecurityGroupsUsed: 1, totalFloatingIpsUsed: fips,
    });
  }
  if (atLeast(mv, 57)) {
    delete absolute.maxPersonality;
    delete absolute.maxPersonalitySize;
  }
  return { status: 200, body: { limits: { rate: [], absolute } } };
}

function fingerprint(publicKey: string): string {
  const b64 = publicKey.trim().split(/\s+/)[1] ?? '';
  const md5 = createHash('md5').update(Buffer.from(b64, 'base64')).digest('hex');
  return md5.match(/../g)?.join(':') ?? md5;
}

async function keypairs(sim: OpenStackSim, req: SimRequest, token: TokenInfo, mv: [number, number],
  name: string | undefined): Promise<SimResponse> {
  const json = (k: { name: string; publicKey: string; fingerprint: string; type: string }, extra: Record<string, unknown> = {}) => ({
    name: k.name, public_key: k.publicKey, fingerprint: k.fingerprint, ...(atLeast(mv, 2) ? { type: k.type } : {}), ...extra,
  });
  const mine = [...sim.state.keypairs.values()].filter((k) => k.userId === token.userId);
  if (name === undefined && req.method === 'GET') {
    return { status: 200, body: { keypairs: mine.map((k) => ({ keypair: json(k) })) } };
  }
  if (name === undefined && req.method === 'POST') {
    const body = await readJson(req);
    const kp = asObj(body.keypair);
    const kname = typeof kp?.name === 'string' ? kp.name : '';
    if (!/^[a-zA-Z0-9 _-]{1,255}$/.test(kname)) throw err(400, `Invalid input for field/attribute name. Value: ${kname}.`);
    if (sim.state.keypairs.has(`${token.userId}/${kname}`)) throw err(409, `Key pair '${kname}' already exists.`);
    if (mine.length >= sim.state.limits.keypairs) throw err(403, 'Quota exceeded, too many key pairs.');
    let publicKey = typeof kp?.public_key === 'string' ? kp.public_key.trim() : '';
    let privateKey: string | undefined;
    if (publicKey === '') {
      const pair = ed25519KeyPair('Generated-by-Nova');
      publicKey = pair.public;
      privateKey = pair.private;
    } else if (!/^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-\S+) [A-Za-z0-9+/=]+/.test(publicKey)) {
      throw err(400, 'Keypair data is invalid: failed to generate fingerprint');
    }
    const k = {
      name: kname, userId: token.userId, publicKey, fingerprint: fingerprint(publicKey),
      type: (kp?.type === 'x509' ? 'x509' : 'ssh') as 'ssh' | 'x509', createdAt: new Date(),
    };
    sim.state.keypairs.set(`${token.userId}/${kname}`, k);
    return {
      status: atLeast(mv, 2) ? 201 : 200,
      body: { keypair: json(k, { user_id: token.userId, ...(privateKey ? { private_key: privateKey } : {}) }) },
    };
  }
  if (name !== undefined) {
    const k = sim.state.keypairs.get(`${token.userId}/${name}`);
    if (!k) throw err(404, `Keypair ${name} not found for user ${token.userId}`);
    if (req.method === 'GET') {
      return {
        status: 200,
        body: {
          keypair: json(k, {
            user_id: k.userId, created_at: k.createdAt.toISOString().replace('Z', ''), deleted: false,
            deleted_at: null, updated_at: null, id: 1,
          }),
        },
      };
    }
    if (req.method === 'DELETE') {
      sim.state.keypairs.delete(`${token.userId}/${name}`);
      return { status: atLeast(mv, 2) ? 204 : 202 };
    }
  }
  throw err(405, 'The method specified is not allowed for this resource.');
}

/** Nova's (deprecated, still served at 2.1) proxy to Glance: what pkgcloud's getImages uses. */
function imageProxy(sim: OpenStackSim, token: TokenInfo, seg: string[]): SimResponse {
  const json = (im: SimImage): Record<string, unknown> => {
    const g = glanceImage(sim, im);
    return {
      id: im.id, name: im.name, status: im.status === 'active' ? 'ACTIVE' : im.status.toUpperCase(),
      progress: im.status === 'active' ? 100 : 0, minDisk: im.minDisk, minRam: im.minRam,
      created: isoSeconds(im.createdAt), updated: isoSeconds(im.updatedAt), metadata: im.props,
      'OS-EXT-IMG-SIZE:size': g.size,
      links: [
        { rel: 'self', href: `${sim.base}/compute/v2.1/images/${im.id}` },
        { rel: 'bookmark', href: `${sim.base}/compute/images/${im.id}` },
      ],
    };
  };
  const visible = [...sim.state.images.values()]
    .filter((im) => im.status !== 'deleted' && (im.visibility === 'public' || im.owner === token.projectId));
  const [, b] = seg;
  if (seg.length === 1 || (seg.length === 2 && b === 'detail')) {
    return {
      status: 200,
      body: { images: visible.map((im) => (b === 'detail' ? json(im) : { id: im.id, name: im.name, links: json(im).links })) },
    };
  }
  if (seg.length === 2 && b !== undefined) {
    const im = isUuid(b) ? visible.find((i) => i.id === b) : undefined;
    if (!im) throw err(404, 'Image not found.');
    return { status: 200, body: { image: json(im) } };
  }
  throw err(404, 'The resource could not be found.');
}
