// An OpenStack API simulator: Keystone v3, Nova 2.1, Glance v2 and Neutron v2.0 on one loopback
// port, speaking the real HTTP APIs (paths, JSON shapes, status codes, headers) closely enough
// for the real `openstack` CLI and for nodepool-ts's driver, with fault injection a real cloud
// cannot be asked for: 500s, slow or hanging answers, quota refusals, servers stuck in BUILD or
// going to ERROR, deletes that never finish, leaked ports, a cloud that is down.
//
// In-process: `const sim = new OpenStackSim(); await sim.start(); sim.authUrl; sim.setFaults(...)`.
// Out of process: scripts/openstack-sim.sh (main.ts) and the admin API under /_sim/.
// With `tls` it serves HTTPS (every service, the catalog's URLs included) with that certificate.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  HttpError, notFound, readJson, requestId, send, serviceError, unauthorized, isUuid,
  type Service, type SimRequest, type SimResponse, type TokenInfo,
} from './http.js';
import {
  defaultFaults, type FaultRule, type SimFaults, type SimFlavor, type SimLimits, type SimNetwork,
  type SimAppCredential, type SimServer, type SimState,
} from './model.js';
import { createAppCredential, handleIdentity } from './keystone.js';
import { handleCompute, activateServer, finishDelete } from './nova.js';
import { handleImage } from './glance.js';
import { handleNetwork } from './neutron.js';
import { SshEndpoints } from './ssh.js';

export interface SimOptions {
  host?: string;
  /** 0 (default) = a free port */
  port?: number;
  region?: string;
  /** lifetime of issued tokens (default 1 h) */
  tokenTtlMs?: number;
  flavors?: Omit<SimFlavor, 'ephemeral' | 'swap' | 'isPublic' | 'disk'>[];
  azs?: string[];
  limits?: Partial<SimLimits>;
  /** networks besides none; default: `private` (10.1.0.0/16) and external `public` (172.24.4.0/24) */
  networks?: { name: string; cidr: string; external?: boolean; shared?: boolean }[];
  /** public images present from the start; default one CirrOS image */
  images?: { name: string; id?: string; diskFormat?: string }[];
  faults?: Partial<SimFaults>;
  /**
   * Give every ACTIVE server an SSH endpoint on its fixed IP and this port (0 = pick one), so
   * host-key scans work. Use a loopback network (e.g. 127.42.0.0/16) for reachable addresses.
   */
  sshPort?: number | null;
  /**
   * Also accept tokens issued by this (real) Keystone, validated with it and cached: the
   * simulator then stands in for one service of a real cloud (Neutron for a real Nova).
   */
  externalKeystone?: string | null;
  /** serve HTTPS with this certificate (chain) and key, PEM text */
  tls?: { cert: string; key: string } | null;
}

/** Credentials of the two users the simulator always has. */
export const SIM_USERS = Object.freeze({
  demo: { username: 'demo', password: 'secret-demo-pw', project: 'demo', domain: 'Default' },
  alice: { username: 'alice', password: 'wonderland-pw', project: 'ci', domain: 'Example' },
});

export const DEFAULT_SIM_FLAVORS: readonly Omit<SimFlavor, 'ephemeral' | 'swap' | 'isPublic' | 'disk'>[] = [
  { id: '1', name: 'm1.tiny', vcpus: 1, ram: 512 },
  { id: '2', name: 'm1.small', vcpus: 1, ram: 2048 },
  { id: '3', name: 'm1.medium', vcpus: 2, ram: 4096 },
  { id: '4', name: 'm1.large', vcpus: 4, ram: 8192 },
  { id: '5', name: 'm1.xlarge', vcpus: 8, ram: 16384 },
];

export const DEFAULT_SIM_IMAGE = 'cirros-0.6.2-x86_64-disk';

interface Hung { res: ServerResponse }

export class OpenStackSim {
  readonly state: SimState;
  readonly region: string;
  readonly tokenTtlMs: number;
  faults: SimFaults;
  /** API calls served (after faults), by `service METHOD /normalised/path` */
  readonly counters = new Map<string, number>();
  readonly tokens = new Map<string, TokenInfo>();
  readonly ssh: SshEndpoints | null;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly hung = new Set<Hung>();
  private baseUrl = '';
  private readonly host: string;
  private readonly port: number;
  private readonly options: SimOptions;

  constructor(opts: SimOptions = {}) {
    this.options = opts;
    this.host = opts.host ?? '127.0.0.1';
    this.port = opts.port ?? 0;
    this.region = opts.region ?? 'RegionOne';
    this.tokenTtlMs = opts.tokenTtlMs ?? 3_600_000;
    this.faults = { ...defaultFaults(), ...(opts.faults ?? {}) };
    this.state = this.initialState(opts);
    this.ssh = opts.sshPort !== undefined && opts.sshPort !== null ? new SshEndpoints(opts.sshPort) : null;
    if (this.faults.sshDown) this.ssh?.setDown(true);
  }

  /** `http://host:port` */
  get base(): string {
    return this.baseUrl;
  }

  /** Keystone v3 endpoint, as clouds.yaml's `auth_url` */
  get authUrl(): string {
    return `${this.baseUrl}/identity/v3`;
  }

  async start(): Promise<void> {
    if (this.server) return;
    await this.ssh?.start();
    const tls = this.options.tls;
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.handle(req, res);
    const server: Server = tls ? createHttpsServer({ cert: tls.cert, key: tls.key }, handler) : createServer(handler);
    server.keepAliveTimeout = 5000;
    server.on('connection', (sock: Socket) => {
      if (this.faults.down) {
        sock.destroy();
        return;
      }
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.host, () => resolve());
    });
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('simulator: no TCP address');
    this.baseUrl = `${tls ? 'https' : 'http'}://${this.host}:${addr.port}`;
    this.server = server;
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const h of this.hung) h.res.destroy();
    this.hung.clear();
    const server = this.server;
    this.server = null;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of this.sockets) s.destroy();
      await closed;
    }
    await this.ssh?.stop();
  }

  /** Merge fault settings; `rules` replaces the rule list when given. */
  setFaults(f: Partial<SimFaults>): void {
    const wasHanging = this.faults.deleteHang;
    this.faults = { ...this.faults, ...f };
    // deletes that hung complete once the hang is lifted
    if (wasHanging && !this.faults.deleteHang) {
      for (const s of this.state.servers.values()) if (s.deletingSince) this.scheduleDeletion(s);
    }
    if (f.down) for (const s of this.sockets) s.destroy();
    if (f.sshDown !== undefined) this.ssh?.setDown(f.sshDown);
  }

  resetFaults(): void {
    this.faults = { ...defaultFaults(), ...(this.options.faults ?? {}) };
    this.ssh?.setDown(false);
  }

  addFaultRule(rule: FaultRule): void {
    this.faults = { ...this.faults, rules: [...this.faults.rules, rule] };
  }

  setLimits(l: Partial<SimLimits>): void {
    Object.assign(this.state.limits, l);
  }

  /** Total API calls counted, optionally only those whose key starts with `prefix`. */
  calls(prefix = ''): number {
    let n = 0;
    for (const [k, v] of this.counters) if (k.startsWith(prefix)) n += v;
    return n;
  }

  resetCounters(): void {
    this.counters.clear();
  }

  /** Runs `fn` after `ms` unless the simulator stops first. */
  later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, Math.max(0, ms));
    t.unref();
    this.timers.add(t);
  }

  /**
   * An application credential of a user (by name) on their project, as `openstack application
   * credential create` makes it; `expiresAt` limits it and the tokens issued for it.
   */
  createAppCredential(username: string, name: string, opts: { secret?: string; expiresAt?: Date | null } = {}): SimAppCredential {
    const user = [...this.state.users.values()].find((u) => u.name === username);
    if (!user) throw new Error(`no user ${username}`);
    return createAppCredential(this, user.id, user.projects[0] ?? '', { name, ...opts });
  }

  /** A project by name or id with its domain, for tests creating foreign servers. */
  projectOf(username: string): string {
    for (const u of this.state.users.values()) if (u.name === username) return u.projects[0] ?? '';
    return '';
  }

  /** What the admin API returns: everything, for assertions. */
  snapshot(): Record<string, unknown> {
    const s = this.state;
    return {
      servers: [...s.servers.values()].map((v) => ({ ...v })),
      images: [...s.images.values()].map((v) => ({ ...v })),
      ports: [...s.ports.values()].map((v) => ({ ...v })),
      floatingips: [...s.floatingIps.values()].map((v) => ({ ...v })),
      networks: [...s.networks.values()].map((v) => ({ ...v })),
      keypairs: [...s.keypairs.values()].map((v) => ({ ...v })),
      limits: { ...s.limits },
      faults: this.faults,
      counters: Object.fromEntries(this.counters),
    };
  }

  // ---- state helpers used by the services ----------------------------------------------------

  /** Allocates the next address of a network's cidr (IPv4). */
  allocateIp(net: SimNetwork): string {
    const [base = '0.0.0.0', bitsText = '24'] = net.cidr.split('/');
    const bits = Number(bitsText);
    const baseInt = ipToInt(base);
    const size = 2 ** (32 - bits);
    for (let tries = 0; tries < size; tries++) {
      const host = net.nextHost;
      net.nextHost = net.nextHost + 1 >= size - 1 ? 2 : net.nextHost + 1;
      const ip = intToIp(baseInt + host);
      const used = [...this.state.ports.values()].some((p) => p.ip === ip)
        || [...this.state.floatingIps.values()].some((f) => f.address === ip);
      if (!used) return ip;
    }
    throw new HttpError(serviceError('network', 409, `No more IP addresses available on network ${net.id}.`,
      'IpAddressGenerationFailure'));
  }

  scheduleActivation(server: SimServer): void {
    let result = this.faults.bootResult;
    if (this.faults.stuckNextBoots > 0) {
      this.faults = { ...this.faults, stuckNextBoots: this.faults.stuckNextBoots - 1 };
      result = 'BUILD';
    } else if (this.faults.errorNextBoots > 0) {
      this.faults = { ...this.faults, errorNextBoots: this.faults.errorNextBoots - 1 };
      result = 'ERROR';
    }
    if (result === 'BUILD') return;
    this.later(this.faults.bootDelayMs, () => activateServer(this, server.id, result));
  }

  scheduleDeletion(server: SimServer): void {
    if (this.faults.deleteHang) return;
    this.later(this.faults.deleteDelayMs, () => finishDelete(this, server.id));
  }

  // ---- HTTP ----------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sim');
    const rid = requestId();
    const headers: Record<string, string> = { 'x-openstack-request-id': rid };
    try {
      if (url.pathname.startsWith('/_sim/') || url.pathname === '/_sim') {
        send(res, await this.admin(req, url), headers);
        return;
      }
      const m = /^\/(identity|compute|image|network)(\/.*)?$/.exec(url.pathname);
      if (!m) {
        send(res, { status: 404, body: { error: `no service at ${url.pathname}` } }, headers);
        return;
      }
      const service = m[1] as Service;
      const path = m[2] ?? '/';
      if (service === 'compute') headers['x-compute-request-id'] = rid;
      const simReq: SimRequest = {
        service, method: (req.method ?? 'GET').toUpperCase(), path, query: url.searchParams, headers: req.headers,
        raw: req, base: this.baseUrl, auth: await this.resolveToken(req.headers['x-auth-token']),
      };
      this.count(simReq); // faulted calls count too: they were made
      if (await this.applyFaults(simReq, res, headers)) return;
      let r: SimResponse;
      switch (service) {
        case 'identity': r = await handleIdentity(this, simReq); break;
        case 'compute': r = await handleCompute(this, simReq, headers); break;
        case 'image': r = await handleImage(this, simReq, res, headers); break;
        case 'network': r = await handleNetwork(this, simReq); break;
      }
      if (r.status === 0) return; // streamed by the handler
      send(res, r, headers);
    } catch (err) {
      if (err instanceof HttpError) {
        send(res, err.response, headers);
        return;
      }
      send(res, { status: 500, body: { error: String((err as Error).stack ?? err) } }, headers);
    }
  }

  /** A valid (unexpired) token, or null. */
  tokenFor(header: string | string[] | undefined): TokenInfo | null {
    const id = Array.isArray(header) ? header[0] : header;
    if (!id) return null;
    const t = this.tokens.get(id);
    if (!t) return null;
    if (t.expiresAt.getTime() <= Date.now()) {
      this.tokens.delete(id);
      return null;
    }
    return t;
  }

  private readonly externalTokens = new Map<string, TokenInfo | null>();

  /** A local token, or (with externalKeystone) one the real Keystone vouches for. */
  async resolveToken(header: string | string[] | undefined): Promise<TokenInfo | null> {
    const local = this.tokenFor(header);
    const ks = this.options.externalKeystone;
    const id = Array.isArray(header) ? header[0] : header;
    if (local || !ks || !id) return local;
    const cached = this.externalTokens.get(id);
    if (cached !== undefined && (cached === null || cached.expiresAt.getTime() > Date.now())) return cached;
    let info: TokenInfo | null = null;
    try {
      const r = await fetch(`${ks.replace(/\/+$/, '')}/auth/tokens`, { headers: { 'X-Auth-Token': id, 'X-Subject-Token': id } });
      if (r.ok) {
        const t = (await r.json() as { token: {
          user: { id: string; name: string; domain: { id: string } }; project?: { id: string; name: string };
          issued_at: string; expires_at: string; roles?: { name: string }[];
        } }).token;
        info = {
          id, userId: t.user.id, userName: t.user.name, domainId: t.user.domain.id, projectId: t.project?.id ?? '',
          projectName: t.project?.name ?? '', issuedAt: new Date(t.issued_at), expiresAt: new Date(t.expires_at),
          admin: (t.roles ?? []).some((role) => role.name === 'admin'),
        };
      }
    } catch {
      info = null;
    }
    this.externalTokens.set(id, info);
    return info;
  }

  /** Every service but version discovery needs a token. */
  requireAuth(req: SimRequest): TokenInfo {
    if (!req.auth) throw new HttpError(unauthorized());
    return req.auth;
  }

  private count(req: SimRequest): void {
    const norm = req.path.split('/').map((seg) => (isUuid(seg) || /^[0-9a-f]{32}$/.test(seg) ? '{id}' : seg)).join('/');
    const key = `${req.service} ${req.method} ${norm}`;
    this.counters.set(key, (this.counters.get(key) ?? 0) + 1);
  }

  /** Returns true when a fault rule answered (or swallowed) the request. */
  private async applyFaults(req: SimRequest, res: ServerResponse, headers: Record<string, string>): Promise<boolean> {
    const rules = this.faults.rules;
    for (const rule of rules) {
      if (rule.service && rule.service !== req.service) continue;
      if (rule.method && rule.method.toUpperCase() !== req.method) continue;
      if (rule.path && !new RegExp(rule.path).test(req.path)) continue;
      if (rule.probability !== undefined && Math.random() >= rule.probability) continue;
      if (rule.times !== undefined) {
        rule.times -= 1;
        if (rule.times <= 0) this.faults = { ...this.faults, rules: this.faults.rules.filter((r) => r !== rule) };
      }
      if (rule.delayMs) await new Promise<void>((resolve) => this.later(rule.delayMs ?? 0, resolve));
      if (rule.hang) {
        this.hung.add({ res });
        // drain the body so the client sees no backpressure, then never answer
        req.raw.resume();
        return true;
      }
      if (rule.status) {
        req.raw.resume();
        send(res, serviceError(req.service, rule.status,
          rule.message ?? `Injected fault: HTTP ${rule.status} for ${req.method} ${req.path}`), headers);
        return true;
      }
      return false;
    }
    return false;
  }

  private async admin(req: IncomingMessage, url: URL): Promise<SimResponse> {
    const method = (req.method ?? 'GET').toUpperCase();
    const body = method === 'GET' || method === 'DELETE' ? {} : await readJson({
      service: 'compute', method, path: url.pathname, query: url.searchParams, headers: req.headers, raw: req,
      base: this.baseUrl, auth: null,
    });
    switch (`${method} ${url.pathname}`) {
      case 'GET /_sim/state':
        return { status: 200, body: this.snapshot() };
      case 'GET /_sim/counters':
        return { status: 200, body: { total: this.calls(), counters: Object.fromEntries(this.counters) } };
      case 'DELETE /_sim/counters':
        this.resetCounters();
        return { status: 204 };
      case 'GET /_sim/faults':
        return { status: 200, body: this.faults };
      case 'POST /_sim/faults':
        this.setFaults(body as Partial<SimFaults>);
        return { status: 200, body: this.faults };
      case 'DELETE /_sim/faults':
        this.resetFaults();
        return { status: 204 };
      case 'POST /_sim/limits':
        this.setLimits(body as Partial<SimLimits>);
        return { status: 200, body: this.state.limits };
      default:
        return notFound('compute', `no admin route ${method} ${url.pathname}`);
    }
  }

  // ---- initial state -------------------------------------------------------------------------

  private initialState(opts: SimOptions): SimState {
    const now = new Date();
    const state: SimState = {
      domains: new Map(), projects: new Map(), users: new Map(), appCredentials: new Map(), flavors: new Map(),
      azs: opts.azs ?? ['nova'],
      networks: new Map(), ports: new Map(), floatingIps: new Map(), securityGroups: new Map(),
      servers: new Map(), images: new Map(), keypairs: new Map(),
      limits: {
        instances: 10, cores: 20, ram: 51200, floatingIps: 50, keypairs: 100, serverMeta: 128,
        ...(opts.limits ?? {}),
      },
    };
    state.domains.set('default', { id: 'default', name: 'Default' });
    state.domains.set('a8f6d3c1e2b94f0e9d7c6b5a4f3e2d1c', { id: 'a8f6d3c1e2b94f0e9d7c6b5a4f3e2d1c', name: 'Example' });
    const demoProject = hexId();
    const ciProject = hexId();
    state.projects.set(demoProject, { id: demoProject, name: SIM_USERS.demo.project, domainId: 'default' });
    state.projects.set(ciProject, { id: ciProject, name: SIM_USERS.alice.project, domainId: 'a8f6d3c1e2b94f0e9d7c6b5a4f3e2d1c' });
    const demoUser = hexId();
    const aliceUser = hexId();
    state.users.set(demoUser, {
      id: demoUser, name: SIM_USERS.demo.username, password: SIM_USERS.demo.password, domainId: 'default',
      projects: [demoProject],
    });
    state.users.set(aliceUser, {
      id: aliceUser, name: SIM_USERS.alice.username, password: SIM_USERS.alice.password,
      domainId: 'a8f6d3c1e2b94f0e9d7c6b5a4f3e2d1c', projects: [ciProject],
    });
    for (const f of opts.flavors ?? DEFAULT_SIM_FLAVORS) {
      state.flavors.set(f.id, { ...f, disk: Math.max(1, Math.round(f.ram / 100)), ephemeral: 0, swap: 0, isPublic: true });
    }
    const nets = opts.networks ?? [
      { name: 'private', cidr: '10.1.0.0/16', shared: true },
      { name: 'public', cidr: '172.24.4.0/24', external: true, shared: false },
    ];
    const adminProject = hexId();
    for (const n of nets) {
      const [base = '0.0.0.0'] = n.cidr.split('/');
      const id = randomUUID();
      state.networks.set(id, {
        id, name: n.name, projectId: n.external ? adminProject : demoProject, external: n.external ?? false,
        shared: n.shared ?? !n.external, subnetId: randomUUID(), cidr: n.cidr, gateway: intToIp(ipToInt(base) + 1),
        nextHost: 2, createdAt: now,
      });
    }
    for (const project of [demoProject, ciProject]) {
      const sg = randomUUID();
      state.securityGroups.set(sg, { id: sg, name: 'default', projectId: project, description: 'Default security group' });
    }
    for (const im of opts.images ?? [{ name: DEFAULT_SIM_IMAGE }]) {
      const id = im.id ?? randomUUID();
      state.images.set(id, {
        id, name: im.name, status: 'active', visibility: 'public', protected: false,
        diskFormat: im.diskFormat ?? 'qcow2', containerFormat: 'bare', size: 21430272,
        checksum: 'c8fc807773e5354afe61636071771906', osHashValue: randomBytes(64).toString('hex'),
        owner: adminProject, minDisk: 0, minRam: 0, tags: [], props: { hw_rng_model: 'virtio' },
        createdAt: now, updatedAt: now,
      });
    }
    return state;
  }
}

export function hexId(): string {
  return randomBytes(16).toString('hex');
}

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}
