// Neutron v2.0: version discovery, extensions, networks, subnets, ports (list, show, delete),
// floating IPs (list, create, associate, delete) and security groups.
import { randomUUID } from 'node:crypto';
import {
  HttpError, isoZ, readJson, serviceError,
  type SimRequest, type SimResponse, type TokenInfo,
} from './http.js';
import type { SimFloatingIp, SimNetwork, SimPort } from './model.js';
import type { OpenStackSim } from './sim.js';

function err(status: number, message: string, type: string): HttpError {
  return new HttpError(serviceError('network', status, message, type));
}

const EXTENSIONS = [
  ['external-net', 'Neutron external network'], ['router', 'Neutron L3 Router'], ['security-group', 'security-group'],
  ['quotas', 'Quota management support'], ['standard-attr-description', 'standard-attr-description'],
  ['standard-attr-timestamp', 'Resource timestamps'], ['standard-attr-revisions', 'Resource revision numbers'],
  ['standard-attr-tag', 'Tag support for resources with standard attribute: port, subnet, network, router, floatingip'],
  ['port-security', 'Port Security'], ['binding', 'Port Binding'], ['fip-port-details', 'Floating IP Port Details Extension'],
  ['network-mtu', 'Network MTU'], ['availability_zone', 'Availability Zone'], ['subnet_allocation', 'Subnet Allocation'],
];

export async function handleNetwork(sim: OpenStackSim, req: SimRequest): Promise<SimResponse> {
  const path = req.path.replace(/\/+$/, '').replace(/\.json$/, '') || '/';
  if (req.method === 'GET' && path === '/') {
    return {
      status: 200,
      body: { versions: [{ id: 'v2.0', status: 'CURRENT', links: [{ href: `${sim.base}/network/v2.0/`, rel: 'self' }] }] },
    };
  }
  const token = sim.requireAuth(req);
  const seg = path.split('/').filter((s) => s !== '').map(decodeURIComponent);
  if (seg[0] !== 'v2.0') return serviceError('network', 404, 'The resource could not be found.', 'HTTPNotFound');
  const [, a, b] = seg;
  const M = req.method;
  if (seg.length === 1 && M === 'GET') {
    return {
      status: 200,
      body: {
        resources: ['subnet', 'network', 'port', 'floatingip', 'security_group'].map((r) => ({
          name: r, collection: `${r === 'security_group' ? 'security_groups' : `${r}s`}`,
          links: [{ href: `${sim.base}/network/v2.0/${r}s`, rel: 'self' }],
        })),
      },
    };
  }
  if (a === 'extensions' && M === 'GET') {
    const all = EXTENSIONS.map(([alias, name]) => ({ alias, name, description: name, updated: '2013-01-20T00:00:00-00:00', links: [] }));
    if (b !== undefined) {
      const e = all.find((x) => x.alias === b);
      if (!e) throw err(404, `Extension with alias ${b} does not exist`, 'HTTPNotFound');
      return { status: 200, body: { extension: e } };
    }
    return { status: 200, body: { extensions: all } };
  }
  switch (a) {
    case 'networks': return networks(sim, req, token, b);
    case 'subnets': return subnets(sim, req, token, b);
    case 'ports': return ports(sim, req, token, b);
    case 'floatingips': return floatingIps(sim, req, token, b);
    case 'security-groups': return securityGroups(sim, req, token, b);
    case 'quotas': {
      if (req.method !== 'GET' || b === undefined) break;
      return {
        status: 200,
        body: {
          quota: {
            network: -1, subnet: -1, port: -1, router: -1, floatingip: sim.state.limits.floatingIps, security_group: -1,
            security_group_rule: -1, rbac_policy: -1, subnetpool: -1,
          },
        },
      };
    }
    default: break;
  }
  return serviceError('network', 404, 'The resource could not be found.', 'HTTPNotFound');
}

/** Neutron's list filters: any attribute, repeated values OR-ed; `fields` trims the output. */
function filterList<T extends Record<string, unknown>>(items: T[], q: URLSearchParams): Record<string, unknown>[] {
  const keys = [...new Set([...q.keys()])].filter((k) => !['fields', 'limit', 'marker', 'sort_key', 'sort_dir', 'page_reverse'].includes(k));
  let out = items.filter((it) => keys.every((k) => {
    const wanted = q.getAll(k);
    const v = it[k];
    if (Array.isArray(v)) return wanted.some((w) => v.includes(w));
    return wanted.some((w) => String(v) === w || (typeof v === 'boolean' && w.toLowerCase() === String(v)));
  }));
  const fields = q.getAll('fields');
  if (fields.length) {
    out = out.map((it) => Object.fromEntries(Object.entries(it).filter(([k]) => fields.includes(k)))) as T[];
  }
  return out;
}

function stdAttrs(created: Date, updated: Date = created): Record<string, unknown> {
  return { created_at: isoZ(created), updated_at: isoZ(updated), revision_number: 1, tags: [], description: '' };
}

function networkJson(n: SimNetwork): Record<string, unknown> {
  return {
    id: n.id, name: n.name, tenant_id: n.projectId, project_id: n.projectId, admin_state_up: true, mtu: 1450,
    status: 'ACTIVE', subnets: [n.subnetId], shared: n.shared, availability_zone_hints: [], availability_zones: ['nova'],
    ipv4_address_scope: null, ipv6_address_scope: null, 'router:external': n.external, port_security_enabled: true,
    l2_adjacency: true, ...(n.external ? { is_default: false } : {}), ...stdAttrs(n.createdAt),
  };
}

function visibleNet(n: SimNetwork, token: TokenInfo): boolean {
  return token.admin === true || n.shared || n.external || n.projectId === token.projectId;
}

/** What a token may see: its project's resources, or everything with the admin role. */
function owns(token: TokenInfo, projectId: string): boolean {
  return token.admin === true || projectId === token.projectId;
}

async function networks(sim: OpenStackSim, req: SimRequest, token: TokenInfo, id: string | undefined): Promise<SimResponse> {
  const nets = [...sim.state.networks.values()].filter((n) => visibleNet(n, token));
  if (id === undefined && req.method === 'GET') return { status: 200, body: { networks: filterList(nets.map(networkJson), req.query) } };
  if (id !== undefined && req.method === 'GET') {
    const n = nets.find((x) => x.id === id);
    if (!n) throw err(404, `Network ${id} could not be found.`, 'NetworkNotFound');
    return { status: 200, body: { network: filterList([networkJson(n)], req.query)[0] } };
  }
  throw err(405, 'The method is not allowed for this resource.', 'HTTPMethodNotAllowed');
}

async function subnets(sim: OpenStackSim, req: SimRequest, token: TokenInfo, id: string | undefined): Promise<SimResponse> {
  const json = (n: SimNetwork): Record<string, unknown> => {
    const [base = '0.0.0.0', bits = '24'] = n.cidr.split('/');
    const parts = base.split('.').map(Number);
    const size = 2 ** (32 - Number(bits));
    const last = [...parts];
    last[3] = (last[3] ?? 0) + Math.min(size - 2, 254);
    return {
      id: n.subnetId, name: `${n.name}-subnet`, network_id: n.id, tenant_id: n.projectId, project_id: n.projectId,
      cidr: n.cidr, ip_version: 4, gateway_ip: n.gateway, enable_dhcp: !n.external, dns_nameservers: [], host_routes: [],
      allocation_pools: [{ start: parts.slice(0, 3).concat([(parts[3] ?? 0) + 2]).join('.'), end: last.join('.') }],
      ipv6_ra_mode: null, ipv6_address_mode: null, subnetpool_id: null, service_types: [], dns_publish_fixed_ip: false,
      ...stdAttrs(n.createdAt),
    };
  };
  const nets = [...sim.state.networks.values()].filter((n) => visibleNet(n, token));
  if (id === undefined && req.method === 'GET') return { status: 200, body: { subnets: filterList(nets.map(json), req.query) } };
  const n = nets.find((x) => x.subnetId === id);
  if (!n || req.method !== 'GET') throw err(404, `Subnet ${id ?? ''} could not be found.`, 'SubnetNotFound');
  return { status: 200, body: { subnet: json(n) } };
}

function portJson(sim: OpenStackSim, p: SimPort): Record<string, unknown> {
  const sg = [...sim.state.securityGroups.values()].find((g) => g.projectId === p.projectId && g.name === 'default');
  return {
    id: p.id, name: p.name, network_id: p.networkId, tenant_id: p.projectId, project_id: p.projectId,
    mac_address: p.mac, admin_state_up: true, status: p.status, device_id: p.deviceId, device_owner: p.deviceOwner,
    fixed_ips: [{ subnet_id: p.subnetId, ip_address: p.ip }], allowed_address_pairs: [], extra_dhcp_opts: [],
    security_groups: sg ? [sg.id] : [], 'binding:vnic_type': 'normal', port_security_enabled: true,
    'binding:host_id': p.bindingHost, 'binding:vif_type': p.bindingHost ? 'ovs' : 'unbound',
    'binding:vif_details': p.bindingHost ? { port_filter: true, connectivity: 'l2' } : {}, 'binding:profile': {},
    ...stdAttrs(p.createdAt),
  };
}

async function ports(sim: OpenStackSim, req: SimRequest, token: TokenInfo, id: string | undefined): Promise<SimResponse> {
  const mine = [...sim.state.ports.values()].filter((p) => owns(token, p.projectId));
  if (id === undefined && req.method === 'GET') {
    return { status: 200, body: { ports: filterList(mine.map((p) => portJson(sim, p)), req.query) } };
  }
  if (id === undefined && req.method === 'POST') {
    // what a real Nova does when it boots a server on a network
    const body = asObj((await readJson(req)).port);
    const net = sim.state.networks.get(String(body?.network_id ?? ''));
    if (!body || !net || !visibleNet(net, token)) throw err(404, `Network ${String(body?.network_id ?? '')} could not be found.`, 'NetworkNotFound');
    const project = typeof body.project_id === 'string' ? body.project_id : typeof body.tenant_id === 'string' ? body.tenant_id : token.projectId;
    const port: SimPort = {
      id: randomUUID(), name: typeof body.name === 'string' ? body.name : '', networkId: net.id, subnetId: net.subnetId,
      projectId: project, deviceId: typeof body.device_id === 'string' ? body.device_id : '',
      deviceOwner: typeof body.device_owner === 'string' ? body.device_owner : '', status: 'DOWN', ip: sim.allocateIp(net),
      mac: `fa:16:3e:${randomUUID().slice(0, 6).match(/../g)?.join(':') ?? '00:00:00'}`,
      bindingHost: typeof body['binding:host_id'] === 'string' ? body['binding:host_id'] : '', createdAt: new Date(),
    };
    if (port.bindingHost) port.status = 'ACTIVE';
    sim.state.ports.set(port.id, port);
    return { status: 201, body: { port: portJson(sim, port) } };
  }
  const p = mine.find((x) => x.id === id);
  if (!p) throw err(404, `Port ${id ?? ''} could not be found.`, 'PortNotFound');
  if (req.method === 'GET') return { status: 200, body: { port: portJson(sim, p) } };
  if (req.method === 'PUT') {
    const body = asObj((await readJson(req)).port) ?? {};
    if (typeof body.device_id === 'string') p.deviceId = body.device_id;
    if (typeof body.device_owner === 'string') p.deviceOwner = body.device_owner;
    if (typeof body.name === 'string') p.name = body.name;
    if ('binding:host_id' in body) {
      p.bindingHost = typeof body['binding:host_id'] === 'string' ? body['binding:host_id'] : '';
      p.status = p.bindingHost ? 'ACTIVE' : 'DOWN';
    }
    return { status: 200, body: { port: portJson(sim, p) } };
  }
  if (req.method === 'DELETE') {
    sim.state.ports.delete(p.id);
    for (const fip of sim.state.floatingIps.values()) {
      if (fip.portId === p.id) {
        fip.portId = null;
        fip.fixedIp = null;
        fip.updatedAt = new Date();
      }
    }
    const server = sim.state.servers.get(p.deviceId);
    if (server) server.portIds = server.portIds.filter((x) => x !== p.id);
    return { status: 204 };
  }
  throw err(405, 'The method is not allowed for this resource.', 'HTTPMethodNotAllowed');
}

function fipJson(sim: OpenStackSim, f: SimFloatingIp): Record<string, unknown> {
  const port = f.portId ? sim.state.ports.get(f.portId) : undefined;
  return {
    id: f.id, floating_ip_address: f.address, floating_network_id: f.networkId, router_id: f.portId ? '3b1a0c7e-5d4f-4e2a-9b8c-7d6e5f4a3b2c' : null,
    port_id: f.portId, fixed_ip_address: f.fixedIp, status: f.portId ? 'ACTIVE' : 'DOWN', tenant_id: f.projectId,
    project_id: f.projectId, dns_domain: '', dns_name: '', qos_policy_id: null,
    port_details: port ? {
      name: port.name, network_id: port.networkId, mac_address: port.mac, admin_state_up: true, status: port.status,
      device_id: port.deviceId, device_owner: port.deviceOwner,
    } : null,
    ...stdAttrs(f.createdAt, f.updatedAt),
    description: f.description,
  };
}

function asObj(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : null;
}

function attach(sim: OpenStackSim, f: SimFloatingIp, portId: string | null, token: TokenInfo): void {
  if (portId === null) {
    f.portId = null;
    f.fixedIp = null;
  } else {
    const port = sim.state.ports.get(portId);
    if (!port || !owns(token, port.projectId)) throw err(404, `Port ${portId} could not be found.`, 'PortNotFound');
    const other = [...sim.state.floatingIps.values()].find((x) => x.portId === portId && x.id !== f.id);
    if (other) {
      throw err(409, `Cannot associate floating IP ${f.address} (${f.id}) with port ${portId} using fixed IP ${port.ip}, as that fixed IP already has a floating IP on external network ${f.networkId}.`, 'FloatingIPPortAlreadyAssociated');
    }
    f.portId = portId;
    f.fixedIp = port.ip;
  }
  f.updatedAt = new Date();
}

async function floatingIps(sim: OpenStackSim, req: SimRequest, token: TokenInfo, id: string | undefined): Promise<SimResponse> {
  const mine = [...sim.state.floatingIps.values()].filter((f) => owns(token, f.projectId));
  if (id === undefined && req.method === 'GET') {
    return { status: 200, body: { floatingips: filterList(mine.map((f) => fipJson(sim, f)), req.query) } };
  }
  if (id === undefined && req.method === 'POST') {
    const body = asObj((await readJson(req)).floatingip);
    if (!body) throw err(400, 'Invalid input for operation: floatingip is required.', 'HTTPBadRequest');
    const netId = String(body.floating_network_id ?? '');
    const net = sim.state.networks.get(netId);
    if (!net) throw err(404, `Network ${netId} could not be found.`, 'NetworkNotFound');
    if (!net.external) throw err(400, `Bad floatingip request: Network ${netId} is not a valid external network.`, 'BadRequest');
    if (mine.length >= sim.state.limits.floatingIps) {
      throw err(409, "Quota exceeded for resources: ['floatingip'].", 'OverQuota');
    }
    const now = new Date();
    const f: SimFloatingIp = {
      id: randomUUID(), address: sim.allocateIp(net), networkId: net.id, projectId: token.projectId, portId: null,
      fixedIp: null, description: typeof body.description === 'string' ? body.description : '', createdAt: now, updatedAt: now,
    };
    if (typeof body.port_id === 'string') attach(sim, f, body.port_id, token);
    sim.state.floatingIps.set(f.id, f);
    return { status: 201, body: { floatingip: fipJson(sim, f) } };
  }
  const f = mine.find((x) => x.id === id);
  if (!f) throw err(404, `Floating IP ${id ?? ''} could not be found`, 'FloatingIPNotFound');
  if (req.method === 'GET') return { status: 200, body: { floatingip: fipJson(sim, f) } };
  if (req.method === 'PUT') {
    const body = asObj((await readJson(req)).floatingip) ?? {};
    if ('port_id' in body) attach(sim, f, typeof body.port_id === 'string' ? body.port_id : null, token);
    if (typeof body.description === 'string') f.description = body.description;
    return { status: 200, body: { floatingip: fipJson(sim, f) } };
  }
  if (req.method === 'DELETE') {
    sim.state.floatingIps.delete(f.id);
    return { status: 204 };
  }
  throw err(405, 'The method is not allowed for this resource.', 'HTTPMethodNotAllowed');
}

async function securityGroups(sim: OpenStackSim, req: SimRequest, token: TokenInfo, id: string | undefined): Promise<SimResponse> {
  const now = new Date(0);
  const json = (g: { id: string; name: string; projectId: string; description: string }): Record<string, unknown> => ({
    id: g.id, name: g.name, tenant_id: g.projectId, project_id: g.projectId, security_group_rules: [], stateful: true,
    shared: false, ...stdAttrs(now), description: g.description,
  });
  // every project has a `default` group, created on first sight as Neutron does
  for (const project of [token.projectId, ...req.query.getAll('tenant_id'), ...req.query.getAll('project_id')]) {
    if (project && ![...sim.state.securityGroups.values()].some((g) => g.projectId === project && g.name === 'default')) {
      const sgId = randomUUID();
      sim.state.securityGroups.set(sgId, { id: sgId, name: 'default', projectId: project, description: 'Default security group' });
    }
  }
  const mine = [...sim.state.securityGroups.values()].filter((g) => owns(token, g.projectId));
  if (id === undefined && req.method === 'GET') return { status: 200, body: { security_groups: filterList(mine.map(json), req.query) } };
  const g = mine.find((x) => x.id === id);
  if (!g || req.method !== 'GET') throw err(404, `Security group ${id ?? ''} does not exist`, 'SecurityGroupNotFound');
  return { status: 200, body: { security_group: json(g) } };
}
