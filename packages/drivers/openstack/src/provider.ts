// The OpenStack driver: ProviderManager over Keystone v3, Nova, Glance v2 and Neutron.
//
// Which client makes which call (and why) is listed in the README. In short: pkgcloud for
// Keystone and for the Nova calls it models fully (servers list/show/delete, flavors, limits,
// images by name or id, keypairs) and Neutron port deletion; nova.ts, glance.ts and neutron.ts
// for what pkgcloud cannot express, on pkgcloud's token and catalog.
//
// Every server and image carries Nodepool's metadata (nodepool_provider_name, nodepool_node_id,
// nodepool_image_name, nodepool_build_id, ...); cleanup only ever touches resources tagged with
// this provider's name (floating IPs by their description, ports by the server they belonged to).
import { setMaxListeners } from 'node:events';
import { stat } from 'node:fs/promises';
import type { CloudPoolLabel, OpenStackProvider } from '@nodepool-ts/core/config';
import { getLogger, type Logger } from '@nodepool-ts/core/log';
import { SSH_CONNECTION_TYPES, keyscan } from '@nodepool-ts/core/ssh';
import {
  META_IMAGE, META_LABEL, META_PROVIDER, NotFoundError, ProviderAbortedError, ProviderError, ProviderTimeoutError,
  RateLimiter, ServerStatusError, ZERO_USAGE, addUsage, flavorResources, isManagedServer, requireFlavor,
  sortFlavorsByRam,
} from '@nodepool-ts/core/provider';
import type {
  FlavorInfo, ImageInfo, LabelResources, LeakedResource, ProviderManager, QuotaInfo, ServerInfo, ServerSpec, UploadImageOptions,
} from '@nodepool-ts/core/provider';
import type { RawFlavor, RawImage, RawServer as PkgServer } from 'pkgcloud';
import { classifyAddresses, type NetworkRef } from './addresses.js';
import { GlanceApi, toImageInfo } from './glance.js';
import { NeutronApi } from './neutron.js';
import { NovaApi } from './nova.js';
import { ServerPoller, type RawServer } from './poller.js';
import { OpenStackSession, type ApiCallEvent } from './session.js';

/** Nodepool's MAX_QUOTA_AGE (§3.6): tenant limits are re-read at most every 5 minutes. */
export const MAX_QUOTA_AGE_MS = 300_000;
/** A DOWN port is deleted once seen DOWN in two cleanups this far apart (§3.10). */
export const DOWN_PORT_AGE_MS = 180_000;
const FLAVOR_CACHE_MS = 3_600_000;
const AZ_CACHE_MS = 3_600_000;
const NETWORK_CACHE_MS = 600_000;
const IMAGE_CACHE_MS = 300_000;
const IMAGE_MISS_CACHE_MS = 10_000;
const DEFAULT_POLL_MS = 2000;
const VALIDATE_DELAY_MS = 2000;
/** How long a finished upload may take to become `active` in Glance (async backends). */
const IMAGE_ACTIVE_WAIT_MS = 3_600_000;
/** Prefix of the description of every floating IP we create: how cleanup recognises ours. */
export const FIP_DESCRIPTION_PREFIX = 'nodepool_provider_name=';

export interface OpenStackProviderOptions {
  /** give up on a single API call after this long (default 60 s) */
  apiTimeoutMs?: number;
  /** interval of server status polls (default 2 s; env NODEPOOL_OPENSTACK_POLL_INTERVAL, seconds) */
  pollIntervalMs?: number;
  /** DOWN-port age before deletion (default 180 s; env NODEPOOL_OPENSTACK_DOWN_PORT_AGE, seconds) */
  downPortAgeMs?: number;
  /** check credentials, flavors, networks and images in the background on start (default true) */
  validateOnStart?: boolean;
  /** every API call, for `nodepool.task.*` statsd metrics and call counting */
  onApiCall?: (e: ApiCallEvent) => void;
  /**
   * Leftovers a cleanup removed: DOWN ports (`nodepool.provider.<p>.downPorts` of 3.x and
   * `….leaked.ports` of later Nodepool) and unattached floating IPs (`….leaked.floatingips`)
   */
  onLeakedRemoved?: (resource: LeakedResource, count: number) => void;
  log?: Logger;
}

/** `nodepool.task.<provider>.<service>.<METHOD>.<name>`, openstacksdk's statsd key. */
export function taskMetricKey(e: ApiCallEvent): string {
  return `nodepool.task.${e.provider}.${e.service}.${e.method}.${e.name}`;
}

interface Cached<T> { at: number; value: T }

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function rec(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : {};
}

function isUuid(s: string): boolean {
  return /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i.test(s);
}

function pollIntervalDefault(): number {
  const env = Number(process.env.NODEPOOL_OPENSTACK_POLL_INTERVAL);
  return Number.isFinite(env) && env > 0 ? env * 1000 : DEFAULT_POLL_MS;
}

function downPortAgeDefault(): number {
  const raw = process.env.NODEPOOL_OPENSTACK_DOWN_PORT_AGE;
  const env = Number(raw);
  return raw !== undefined && raw !== '' && Number.isFinite(env) && env >= 0 ? env * 1000 : DOWN_PORT_AGE_MS;
}

export class OpenStackProviderManager implements ProviderManager {
  readonly kind = 'cloud' as const;
  readonly driver = 'openstack';
  readonly name: string;
  readonly config: OpenStackProvider;
  /** API calls made so far (every service, Keystone included) */
  apiCalls = 0;

  private readonly limiter: RateLimiter;
  private readonly session: OpenStackSession;
  private readonly nova: NovaApi;
  private readonly glance: GlanceApi;
  private readonly neutron: NeutronApi;
  private readonly poller: ServerPoller;
  private readonly log: Logger;
  private readonly opts: OpenStackProviderOptions;
  private readonly stopController = new AbortController();
  private started = false;
  private stopped = false;
  private startError: ProviderError | null = null;
  private validateTimer: NodeJS.Timeout | null = null;
  private quotaCache: Cached<QuotaInfo> | null = null;
  private flavorCache: Cached<FlavorInfo[]> | null = null;
  private azCache: Cached<string[]> | null = null;
  private networkCache: Cached<NetworkRef[]> | null = null;
  private readonly imageCache = new Map<string, Cached<ImageInfo | null>>();
  /** servers seen carrying this provider's metadata (id → last seen), to recognise their ports */
  private readonly ownServers = new Map<string, number>();
  /** DOWN ports of our servers → when first seen DOWN */
  private readonly downPorts = new Map<string, number>();
  /** per server being booted: whether to attach a floating IP once ACTIVE */
  private readonly wantFloatingIp = new Map<string, boolean>();

  constructor(config: OpenStackProvider, opts: OpenStackProviderOptions = {}) {
    this.config = config;
    this.name = config.name;
    this.opts = opts;
    this.log = opts.log ?? getLogger(`nodepool.driver.openstack.${config.name}`);
    // every in-flight call listens for stop(): hundreds at once are normal, not a leak
    setMaxListeners(0, this.stopController.signal);
    this.limiter = new RateLimiter(config.rate, config.name);
    this.session = new OpenStackSession({
      provider: config.name,
      cloud: config.cloudConfig,
      region: config.regionName ?? config.cloudConfig.regionName ?? config.cloudConfig.regions[0] ?? null,
      limiter: this.limiter,
      ...(opts.apiTimeoutMs !== undefined ? { apiTimeoutMs: opts.apiTimeoutMs } : {}),
      onApiCall: (e) => {
        this.apiCalls += 1;
        opts.onApiCall?.(e);
      },
    });
    this.nova = new NovaApi(this.session);
    this.glance = new GlanceApi(this.session);
    this.neutron = new NeutronApi(this.session);
    this.poller = new ServerPoller({
      getOne: (id) => this.getServerRaw(id, 'waitForServer'),
      listAll: () => this.listServersRaw('waitForServer'),
    }, opts.pollIntervalMs ?? pollIntervalDefault());
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /**
   * Loads pkgcloud and prepares the clients. Makes no API call itself: a cloud that is down or
   * refuses the credentials must not stop the launcher from serving its other providers, so
   * those problems surface (clearly, naming provider and cloud) in the background check and in
   * every call that needs the cloud.
   */
  async start(): Promise<void> {
    if (this.stopped) throw new ProviderError(this.name, 'fatal', 'provider was stopped; create a new one');
    if (this.started) return;
    this.started = true;
    try {
      await this.session.open();
    } catch (err) {
      // e.g. a clouds.yaml entry without auth_url: every call of this provider reports it
      this.startError = err instanceof ProviderError ? err
        : new ProviderError(this.name, 'fatal', `cannot set up cloud ${this.config.cloud}: ${(err as Error).message}`, { operation: 'start' });
      this.log.error({ provider: this.name }, `provider ${this.name}: ${this.startError.message}`);
      return;
    }
    const tls = this.session.tls;
    if (tls && !tls.verify) {
      this.log.warn({ provider: this.name }, `provider ${this.name}: TLS certificates of cloud ${this.config.cloud} are not verified `
        + `(verify: false or insecure: true in clouds.yaml)${tls.cacertFile ? `; its cacert ${tls.cacertFile} is not used` : ''}`);
    }
    // A moment later, so short-lived users (the CLI) stop before it begins.
    if (this.opts.validateOnStart !== false) {
      this.validateTimer = setTimeout(() => void this.validate(), VALIDATE_DELAY_MS);
      this.validateTimer.unref();
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.validateTimer) clearTimeout(this.validateTimer);
    this.stopController.abort();
    this.poller.stop();
    this.limiter.close();
    this.session.close();
  }

  /**
   * Checks what the config names against the cloud — credentials, every label's flavor, the
   * pools' networks, cloud images, key names — and logs one clear error per problem. Returns the
   * problems (tests, `nodepool info`-like tools).
   */
  async validate(): Promise<string[]> {
    const problems: string[] = [];
    const note = (msg: string): void => {
      problems.push(msg);
      this.log.error({ provider: this.name }, `provider ${this.name}: ${msg}`);
    };
    if (this.startError) {
      note(this.startError.message);
      return problems;
    }
    try {
      await this.session.ensureAuth('validate');
    } catch (err) {
      if (!this.stopped) note((err as Error).message);
      return problems;
    }
    const checks: [string, () => Promise<void>][] = [
      ['flavors', async () => {
        for (const pool of this.config.pools) {
          for (const label of pool.labels) {
            try { await this.findFlavor(label); } catch (err) { note(`pool ${pool.name} label ${label.name}: ${(err as Error).message}`); }
          }
        }
      }],
      ['networks', async () => {
        for (const pool of this.config.pools) {
          try { await this.resolveNetworks(pool.networks, 'validate'); } catch (err) { note(`pool ${pool.name}: ${(err as Error).message}`); }
        }
      }],
      ['cloud-images', async () => {
        for (const ci of this.config.cloudImages) {
          const ref = ci.imageId ?? ci.imageName ?? ci.name;
          try {
            if (!(await this.getCloudImage(ref))) note(`cloud-image ${ci.name}: image ${ref} not found in cloud ${this.config.cloud}`);
          } catch (err) { note(`cloud-image ${ci.name}: ${(err as Error).message}`); }
        }
      }],
      ['key names', async () => {
        const wanted = new Set(this.config.pools.flatMap((p) => p.labels.map((l) => l.keyName)).filter((k): k is string => k !== null));
        if (wanted.size === 0) return;
        const have = await this.session.pk<{ keypair: { name: string } }[]>('compute', 'GET', 'os-keypairs', 'validate',
          'compute GET /os-keypairs', (cb) => this.session.compute.listKeys(cb));
        const names = new Set(have.map((k) => k.keypair.name));
        for (const k of wanted) if (!names.has(k)) note(`key-name ${k} not found in cloud ${this.config.cloud}`);
      }],
    ];
    for (const [, check] of checks) {
      if (this.stopped) break;
      try { await check(); } catch (err) { if (!this.stopped) note((err as Error).message); }
    }
    if (problems.length === 0) this.log.info({ provider: this.name }, `provider ${this.name}: cloud ${this.config.cloud} ready`);
    return problems;
  }

  private ensureRunning(operation: string): void {
    if (this.stopped) throw new ProviderAbortedError(this.name, operation);
    if (!this.started) throw new ProviderError(this.name, 'fatal', `${operation} called before start()`, { operation });
    if (this.startError) throw this.startError;
  }

  // ---- flavors, AZs, networks, quota ---------------------------------------------------------

  async listFlavors(): Promise<FlavorInfo[]> {
    this.ensureRunning('listFlavors');
    const c = this.flavorCache;
    if (c && Date.now() - c.at < FLAVOR_CACHE_MS) return c.value.map((f) => ({ ...f }));
    const raw = await this.session.pk<RawFlavor[]>('compute', 'GET', 'flavors_detail', 'listFlavors', 'compute GET /flavors/detail',
      (cb) => this.session.compute.getFlavors(cb));
    const value = sortFlavorsByRam(raw.map((f) => ({
      id: String(f.id), name: String(f.name), vcpus: Number(f.vcpus ?? 0), ram: Number(f.ram ?? 0),
    })));
    this.flavorCache = { at: Date.now(), value };
    return value.map((f) => ({ ...f }));
  }

  async findFlavor(label: CloudPoolLabel): Promise<FlavorInfo> {
    const flavors = await this.listFlavors();
    try {
      return requireFlavor(this.name, flavors, label);
    } catch (err) {
      // a flavor created since the cache was filled: look once more before failing
      if (this.flavorCache && Date.now() - this.flavorCache.at > 60_000) {
        this.flavorCache = null;
        return requireFlavor(this.name, await this.listFlavors(), label);
      }
      throw err;
    }
  }

  async resourcesForLabel(label: CloudPoolLabel): Promise<LabelResources> {
    return flavorResources(await this.findFlavor(label));
  }

  async listAzs(): Promise<string[]> {
    this.ensureRunning('listAzs');
    const c = this.azCache;
    if (c && Date.now() - c.at < AZ_CACHE_MS) return [...c.value];
    const value = await this.nova.availabilityZones('listAzs');
    this.azCache = { at: Date.now(), value };
    return [...value];
  }

  private async networks(operation: string): Promise<NetworkRef[]> {
    const c = this.networkCache;
    if (c && Date.now() - c.at < NETWORK_CACHE_MS) return c.value;
    const value = await this.neutron.networks(operation);
    this.networkCache = { at: Date.now(), value };
    return value;
  }

  private async networkMap(operation: string): Promise<Map<string, NetworkRef>> {
    const nets = await this.networks(operation);
    return new Map(nets.map((n) => [n.name, n]));
  }

  /** Pool `networks` (names or ids) → ids; an unknown one is a clear, fatal error. */
  private async resolveNetworks(names: string[], operation: string): Promise<string[]> {
    if (names.length === 0) return [];
    let nets = await this.networks(operation);
    const find = (n: string): NetworkRef[] => nets.filter((x) => x.id === n || x.name === n);
    if (names.some((n) => find(n).length === 0) && this.networkCache) {
      this.networkCache = null;
      nets = await this.networks(operation);
    }
    return names.map((n) => {
      const found = find(n);
      if (found.length === 0) {
        throw new ProviderError(this.name, 'fatal', `network ${n} not found in cloud ${this.config.cloud}`, { operation });
      }
      if (found.length > 1) {
        throw new ProviderError(this.name, 'fatal', `network name ${n} is ambiguous in cloud ${this.config.cloud}; use its id`, { operation });
      }
      return found[0]?.id ?? n;
    });
  }

  async getQuota(): Promise<QuotaInfo> {
    this.ensureRunning('getQuota');
    const c = this.quotaCache;
    if (c && Date.now() - c.at < MAX_QUOTA_AGE_MS) return { ...c.value };
    const limits = await this.session.pk<{ absolute: Record<string, number> }>('compute', 'GET', 'limits', 'getQuota', 'compute GET /limits',
      (cb) => this.session.compute.getLimits(cb));
    const abs = limits.absolute ?? {};
    const lim = (v: unknown): number => (typeof v === 'number' && v >= 0 ? v : Infinity);
    const value = { instances: lim(abs.maxTotalInstances), cores: lim(abs.maxTotalCores), ram: lim(abs.maxTotalRAMSize) };
    this.quotaCache = { at: Date.now(), value };
    return { ...value };
  }

  invalidateQuotaCache(): void {
    this.quotaCache = null;
  }

  async unmanagedUsage(knownNodeIds: ReadonlySet<string>): Promise<QuotaInfo> {
    const servers = await this.listServersRaw('unmanagedUsage');
    let flavors = new Map((await this.listFlavors()).map((f) => [f.id, f]));
    let usage: QuotaInfo = { ...ZERO_USAGE };
    for (const s of servers) {
      const metadata = this.metadataOf(s);
      if (isManagedServer({ metadata }, this.name, knownNodeIds)) continue;
      const fid = str(rec(s.flavor).id);
      let f = flavors.get(fid);
      if (!f && fid !== '' && this.flavorCache && Date.now() - this.flavorCache.at > 60_000) {
        this.flavorCache = null;
        flavors = new Map((await this.listFlavors()).map((x) => [x.id, x]));
        f = flavors.get(fid);
      }
      // a server of a deleted flavor still costs an instance
      usage = addUsage(usage, f ? flavorResources(f) : { instances: 1, cores: 0, ram: 0 });
    }
    return usage;
  }

  // ---- servers -----------------------------------------------------------------------------

  private metadataOf(raw: RawServer): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(rec(raw.metadata))) if (typeof v === 'string') out[k] = v;
    return out;
  }

  private toServerInfo(raw: RawServer, nets: ReadonlyMap<string, NetworkRef>): ServerInfo {
    const metadata = this.metadataOf(raw);
    const addr = classifyAddresses(raw.addresses, nets);
    const task = str(raw['OS-EXT-STS:task_state']);
    const status = task === 'deleting' ? 'DELETED' : str(raw.status).toUpperCase() || 'UNKNOWN';
    const imageId = str(rec(raw.image).id);
    const fault = rec(raw.fault);
    return {
      id: str(raw.id),
      name: str(raw.name),
      status,
      az: str(raw['OS-EXT-AZ:availability_zone']) || null,
      hostId: str(raw.hostId) || null,
      publicIpv4: addr.publicIpv4,
      privateIpv4: addr.privateIpv4,
      publicIpv6: addr.publicIpv6,
      interfaceIp: addr.publicIpv6 ?? addr.publicIpv4 ?? addr.privateIpv4,
      flavorId: str(rec(raw.flavor).id) || null,
      imageId: imageId || null,
      fault: typeof fault.message === 'string' ? fault.message : null,
      metadata,
    };
  }

  private noteOwn(raw: RawServer): void {
    if (this.metadataOf(raw)[META_PROVIDER] === this.name) this.ownServers.set(str(raw.id), Date.now());
  }

  private async getServerRaw(id: string, operation: string): Promise<RawServer | null> {
    try {
      const s = await this.session.pk<PkgServer>('compute', 'GET', 'server', operation, 'compute GET /servers/{id}',
        (cb) => this.session.compute.getServer(id, cb), this.stopController.signal);
      return s.original;
    } catch (err) {
      if (err instanceof ProviderError && err.kind === 'notfound') return null;
      throw err;
    }
  }

  private async listServersRaw(operation: string): Promise<RawServer[]> {
    const out: RawServer[] = [];
    const limit = 1000;
    let marker: string | undefined;
    for (;;) {
      const page = await this.session.pk<PkgServer[]>('compute', 'GET', 'servers_detail', operation, 'compute GET /servers/detail',
        (cb) => this.session.compute.getServers(marker ? { limit, marker } : { limit }, cb), this.stopController.signal);
      for (const s of page) {
        out.push(s.original);
        this.noteOwn(s.original);
      }
      const last = page[page.length - 1];
      if (page.length < limit || !last) return out;
      marker = str(last.original.id);
    }
  }

  private async resolveImageId(spec: ServerSpec): Promise<string> {
    const im = spec.image;
    if (im.kind === 'upload') return im.externalId;
    if (im.id !== null) return im.id;
    const found = await this.getCloudImage(im.name);
    if (!found) throw new NotFoundError(this.name, 'image', `${im.name} (cloud ${this.config.cloud})`, { operation: 'createServer' });
    return found.id;
  }

  /** `auto-floating-ip` of the pools offering this label, when the launcher did not say. */
  private autoFloatingIp(spec: ServerSpec): boolean {
    if (spec.autoFloatingIp !== undefined) return spec.autoFloatingIp;
    const label = spec.metadata[META_LABEL];
    const pools = this.config.pools.filter((p) => p.labels.some((l) => l.name === label));
    return pools.length === 0 || pools.some((p) => p.autoFloatingIp);
  }

  async createServer(spec: ServerSpec): Promise<ServerInfo> {
    this.ensureRunning('createServer');
    const imageId = await this.resolveImageId(spec);
    const networkIds = await this.resolveNetworks(spec.networks, 'createServer');
    let id: string;
    try {
      id = await this.nova.createServer({ spec, imageId, networkIds }, 'createServer');
    } catch (err) {
      if (err instanceof ProviderError && err.kind === 'fatal' && /HTTP 400/.test(err.message)) {
        // Nodepool: a 400 may mean our view of images/AZs/flavors is stale
        this.imageCache.clear();
        this.azCache = null;
        this.flavorCache = null;
        this.networkCache = null;
      }
      throw err;
    }
    this.ownServers.set(id, Date.now());
    this.wantFloatingIp.set(id, this.autoFloatingIp(spec));
    return {
      id, name: spec.name, status: 'BUILD', az: spec.az, hostId: null, publicIpv4: null, privateIpv4: null,
      publicIpv6: null, interfaceIp: null, flavorId: spec.flavor.id, imageId, fault: null, metadata: { ...spec.metadata },
    };
  }

  async getServer(id: string): Promise<ServerInfo | null> {
    this.ensureRunning('getServer');
    const raw = await this.getServerRaw(id, 'getServer');
    if (!raw) return null;
    this.noteOwn(raw);
    return this.toServerInfo(raw, await this.networkMap('getServer'));
  }

  async waitForServer(id: string, timeoutMs: number, signal?: AbortSignal): Promise<ServerInfo> {
    this.ensureRunning('waitForServer');
    const deadline = Date.now() + timeoutMs;
    let nets = await this.networkMap('waitForServer');
    for (;;) {
      if (this.stopped || signal?.aborted) throw new ProviderAbortedError(this.name, 'waitForServer');
      const raw = await this.raceDeadline(this.poller.next(id), deadline, signal, `server ${id} to become ACTIVE`, timeoutMs);
      if (raw === null) throw new NotFoundError(this.name, 'server', id, { operation: 'waitForServer' });
      const info = this.toServerInfo(raw, nets);
      if (info.status === 'ERROR') {
        throw new ServerStatusError(this.name, id, 'ERROR', info.fault, { operation: 'waitForServer' });
      }
      if (info.status === 'DELETED') throw new ServerStatusError(this.name, id, 'DELETED', 'deleted while booting', { operation: 'waitForServer' });
      if (info.status === 'ACTIVE') {
        if (this.wantFloatingIp.get(id) !== false && info.publicIpv4 === null && info.publicIpv6 === null) {
          nets = await this.networkMap('waitForServer');
          const withFip = await this.attachFloatingIp(info, nets);
          this.wantFloatingIp.delete(id);
          return withFip;
        }
        this.wantFloatingIp.delete(id);
        return info;
      }
      if (Date.now() >= deadline) throw new ProviderTimeoutError(this.name, `server ${id} to become ACTIVE`, timeoutMs, { operation: 'waitForServer' });
    }
  }

  /**
   * Awaits `p`, or fails with a timeout at `deadline` / an abort on `signal` or stop(). One
   * combined signal per wait: the caller's signal may be shared by hundreds of launches.
   */
  private raceDeadline<T>(p: Promise<T>, deadline: number, signal: AbortSignal | undefined, what: string, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const signals = [signal ? AbortSignal.any([this.stopController.signal, signal]) : this.stopController.signal];
      const cleanup = (): void => {
        clearTimeout(timer);
        for (const s of signals) s.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        cleanup();
        reject(new ProviderAbortedError(this.name, 'wait'));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new ProviderTimeoutError(this.name, what, timeoutMs));
      }, Math.max(0, deadline - Date.now()));
      for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
      p.then((v) => { cleanup(); resolve(v); }, (e: unknown) => {
        cleanup();
        reject(this.stopped ? new ProviderAbortedError(this.name, 'wait') : e);
      });
    });
  }

  /** Attaches a floating IP from the first external network to the server's port (§5.5 auto-floating-ip). */
  private async attachFloatingIp(info: ServerInfo, nets: ReadonlyMap<string, NetworkRef>): Promise<ServerInfo> {
    const external = [...nets.values()].find((n) => n.external);
    if (!external) return info; // nothing to attach from: the launcher reports the missing public IP
    const ports = await this.neutron.ports('waitForServer', { device_id: info.id });
    const externalIds = new Set([...nets.values()].filter((n) => n.external).map((n) => n.id));
    const port = ports.find((p) => !externalIds.has(p.networkId)) ?? ports[0];
    if (!port) {
      throw new ProviderError(this.name, 'fatal', `server ${info.id} has no port to attach a floating IP to`, { operation: 'waitForServer' });
    }
    const nodeId = info.metadata['nodepool_node_id'] ?? '';
    const fip = await this.neutron.createFloatingIp(external.id, port.id,
      `${FIP_DESCRIPTION_PREFIX}${this.name} nodepool_node_id=${nodeId} server_id=${info.id}`, 'waitForServer');
    this.log.info({ provider: this.name, server: info.id, fip: fip.address }, `Attached floating IP ${fip.address} to server ${info.id}`);
    return { ...info, publicIpv4: fip.address, interfaceIp: info.publicIpv6 ?? fip.address };
  }

  async listServers(): Promise<ServerInfo[]> {
    this.ensureRunning('listServers');
    const raw = await this.listServersRaw('listServers');
    const nets = await this.networkMap('listServers');
    return raw.map((s) => this.toServerInfo(s, nets));
  }

  async deleteServer(id: string): Promise<void> {
    this.ensureRunning('deleteServer');
    const raw = await this.getServerRaw(id, 'deleteServer');
    if (!raw) throw new NotFoundError(this.name, 'server', id, { operation: 'deleteServer' });
    this.noteOwn(raw);
    // floating IPs first, as openstacksdk's delete_server(delete_ips=True) does
    const floating = classifyAddresses(raw.addresses, new Map()).floating;
    for (const address of floating) {
      const fips = await this.neutron.floatingIps('deleteServer', { floating_ip_address: address });
      for (const f of fips) {
        await this.neutron.deleteFloatingIp(f.id, 'deleteServer').catch((err: unknown) => {
          if (!(err instanceof ProviderError && err.kind === 'notfound')) throw err;
        });
      }
    }
    try {
      await this.session.pk('compute', 'DELETE', 'server', 'deleteServer', 'compute DELETE /servers/{id}',
        (cb) => this.session.compute.destroyServer(id, cb));
    } catch (err) {
      if (err instanceof ProviderError && err.kind === 'notfound') {
        throw new NotFoundError(this.name, 'server', id, { operation: 'deleteServer' });
      }
      throw err;
    }
    this.wantFloatingIp.delete(id);
  }

  async waitForServerDeletion(id: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    this.ensureRunning('waitForServerDeletion');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const raw = await this.raceDeadline(this.poller.next(id), deadline, signal, `server ${id} to be deleted`, timeoutMs);
      if (raw === null) return;
      if (Date.now() >= deadline) throw new ProviderTimeoutError(this.name, `server ${id} to be deleted`, timeoutMs, { operation: 'waitForServerDeletion' });
    }
  }

  async getConsoleLog(id: string): Promise<string> {
    this.ensureRunning('getConsoleLog');
    try {
      return await this.nova.consoleOutput(id, 'getConsoleLog');
    } catch (err) {
      if (err instanceof ProviderError && err.kind === 'notfound') throw new NotFoundError(this.name, 'server', id, { operation: 'getConsoleLog' });
      throw err;
    }
  }

  /**
   * The launcher's host-key hook: scans the server's interface IP on the connection port of the
   * image it was booted from, for up to `boot-timeout` (§3.5). Non-SSH connection types only
   * wait for the port.
   */
  async hostKeys(server: ServerInfo): Promise<string[]> {
    this.ensureRunning('hostKeys');
    const image = server.metadata[META_IMAGE] ?? '';
    const di = this.config.diskimages.find((d) => d.name === image);
    const ci = this.config.cloudImages.find((c) => c.name === image);
    const type = di?.connectionType ?? ci?.connectionType ?? 'ssh';
    const port = di?.connectionPort ?? ci?.connectionPort ?? (type === 'winrm' ? 5986 : 22);
    if (!server.interfaceIp) throw new ProviderError(this.name, 'fatal', `server ${server.id} has no address to scan`, { operation: 'hostKeys' });
    return keyscan(server.interfaceIp, port, this.config.bootTimeout * 1000, this.stopController.signal,
      { gatherKeys: SSH_CONNECTION_TYPES.has(type) });
  }

  /**
   * §3.10 for OpenStack: DOWN ports of servers this provider launched, once seen DOWN in two
   * cleanups `downPortAgeMs` apart; with `clean-floating-ips`, unattached floating IPs this
   * provider created. Resources of anyone else are never touched.
   */
  async cleanupLeakedResources(): Promise<void> {
    this.ensureRunning('cleanupLeakedResources');
    const now = Date.now();
    // forget servers not seen for a day (their ports would have shown up DOWN long ago)
    for (const [id, at] of this.ownServers) if (now - at > 86_400_000) this.ownServers.delete(id);
    // `port-cleanup-interval: 0`: the project is shared, its DOWN ports are not ours to judge
    const cleanPorts = this.config.portCleanupInterval !== 0;
    const down = cleanPorts ? await this.neutron.ports('cleanupLeakedResources', { status: 'DOWN' }) : [];
    const portAge = this.opts.downPortAgeMs
      ?? (this.config.portCleanupInterval !== null ? this.config.portCleanupInterval * 1000 : downPortAgeDefault());
    const seen = new Set<string>();
    let removed = 0;
    for (const p of down) {
      if (p.deviceOwner !== '' && !p.deviceOwner.startsWith('compute:')) continue;
      if (!this.ownServers.has(p.deviceId)) continue;
      seen.add(p.id);
      const first = this.downPorts.get(p.id);
      if (first === undefined) {
        this.downPorts.set(p.id, now);
        continue;
      }
      if (now - first < portAge) continue;
      try {
        await this.session.pk('network', 'DELETE', 'port', 'cleanupLeakedResources', 'network DELETE /v2.0/ports/{id}',
          (cb) => this.session.network.destroyPort(p.id, cb));
        removed += 1;
        this.log.info({ provider: this.name, port: p.id }, `Deleted DOWN port ${p.id} of server ${p.deviceId}`);
      } catch (err) {
        if (!(err instanceof ProviderError && err.kind === 'notfound')) {
          this.log.warn({ provider: this.name, port: p.id, err: (err as Error).message }, `Could not delete DOWN port ${p.id}`);
        }
      }
      this.downPorts.delete(p.id);
    }
    for (const id of this.downPorts.keys()) if (!seen.has(id)) this.downPorts.delete(id);
    if (removed > 0) this.opts.onLeakedRemoved?.('ports', removed);

    if (this.config.cleanFloatingIps) {
      const mine = `${FIP_DESCRIPTION_PREFIX}${this.name} `;
      let fips = 0;
      try {
        for (const f of await this.neutron.floatingIps('cleanupLeakedResources')) {
          if (f.portId !== null || !f.description.startsWith(mine)) continue;
          try {
            await this.neutron.deleteFloatingIp(f.id, 'cleanupLeakedResources');
            fips++;
            this.log.info({ provider: this.name, fip: f.address }, `Deleted unattached floating IP ${f.address}`);
          } catch (err) {
            if (!(err instanceof ProviderError && err.kind === 'notfound')) throw err;
          }
        }
      } finally {
        if (fips > 0) this.opts.onLeakedRemoved?.('floatingips', fips);
      }
    }
  }

  // ---- images ------------------------------------------------------------------------------

  async uploadImage(opts: UploadImageOptions): Promise<ImageInfo> {
    this.ensureRunning('uploadImage');
    const operation = 'uploadImage';
    try {
      await stat(opts.file);
    } catch (err) {
      throw new ProviderError(this.name, 'fatal', `cannot read image file ${opts.file}: ${(err as Error).message}`, { operation, cause: err });
    }
    const properties: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.metadata)) properties[k] = String(v);
    properties[META_PROVIDER] ??= this.name;
    // what openstacksdk records, so clouds and tools see the same image either way
    properties['owner_specified.openstack.object'] = `images/${opts.name}`;
    if (opts.md5) properties['owner_specified.openstack.md5'] = opts.md5;
    if (opts.sha256) properties['owner_specified.openstack.sha256'] = opts.sha256;
    const created = await this.glance.create({
      name: opts.name, diskFormat: opts.format, containerFormat: opts.format === 'vhd' ? 'ovf' : 'bare',
      visibility: 'private', properties,
    }, operation);
    try {
      let lastReported = -1;
      await this.glance.upload(created.id, opts.file, operation, {
        // at most ~100 progress reports per upload, plus the last byte
        onProgress: (bytes, total) => {
          const pct = total > 0 ? Math.floor((bytes * 100) / total) : 100;
          if (pct !== lastReported || bytes === total) {
            lastReported = pct;
            opts.onProgress?.(bytes, total);
          }
        },
        signal: opts.signal ?? this.stopController.signal,
      });
      const deadline = Date.now() + IMAGE_ACTIVE_WAIT_MS;
      for (;;) {
        const img = await this.glance.get(created.id, operation);
        if (!img) throw new ProviderError(this.name, 'fatal', `image ${created.id} vanished during upload`, { operation });
        if (img.status === 'active') {
          if (opts.md5 && img.checksum && img.checksum !== opts.md5) {
            throw new ProviderError(this.name, 'fatal',
              `image ${created.id}: Glance checksum ${img.checksum} does not match the build's md5 ${opts.md5}`, { operation });
          }
          return toImageInfo(img);
        }
        if (img.status === 'killed' || img.status === 'deleted') {
          throw new ProviderError(this.name, 'fatal', `image ${created.id} went to status ${img.status} in Glance`, { operation });
        }
        if (Date.now() > deadline) throw new ProviderTimeoutError(this.name, `image ${created.id} to become active`, IMAGE_ACTIVE_WAIT_MS, { operation });
        await new Promise((r) => setTimeout(r, DEFAULT_POLL_MS));
      }
    } catch (err) {
      // leave no half-uploaded image behind
      await this.glance.delete(created.id, 'uploadImage').catch(() => undefined);
      throw err;
    }
  }

  async deleteImage(nameOrId: string): Promise<void> {
    this.ensureRunning('deleteImage');
    let id: string | null = null;
    if (isUuid(nameOrId)) id = (await this.glance.get(nameOrId, 'deleteImage'))?.id ?? null;
    if (id === null) {
      const named = await this.glance.list('deleteImage', { name: nameOrId });
      if (named.length > 1) {
        throw new ProviderError(this.name, 'fatal', `more than one image is named ${nameOrId} in cloud ${this.config.cloud}; delete by id`,
          { operation: 'deleteImage' });
      }
      id = named[0]?.id ?? null;
    }
    if (id === null) throw new NotFoundError(this.name, 'image', nameOrId, { operation: 'deleteImage' });
    try {
      await this.glance.delete(id, 'deleteImage');
    } catch (err) {
      if (err instanceof ProviderError && err.kind === 'notfound') throw new NotFoundError(this.name, 'image', nameOrId, { operation: 'deleteImage' });
      throw err;
    }
    for (const [k, v] of this.imageCache) if (v.value?.id === id) this.imageCache.delete(k);
  }

  async listImages(): Promise<ImageInfo[]> {
    this.ensureRunning('listImages');
    return (await this.glance.list('listImages')).map(toImageInfo);
  }

  /** By id (Nova's image proxy, as pkgcloud reaches it) or by exact name. Cached 5 min (misses 10 s). */
  async getCloudImage(nameOrId: string): Promise<ImageInfo | null> {
    this.ensureRunning('getCloudImage');
    const c = this.imageCache.get(nameOrId);
    if (c && Date.now() - c.at < (c.value ? IMAGE_CACHE_MS : IMAGE_MISS_CACHE_MS)) return c.value ? { ...c.value } : null;
    let found: ImageInfo | null = null;
    if (isUuid(nameOrId)) {
      try {
        const im = await this.session.pk<RawImage>('compute', 'GET', 'image', 'getCloudImage', 'compute GET /images/{id}',
          (cb) => this.session.compute.getImage(nameOrId, cb));
        found = { id: im.id, name: im.name, status: String(im.status).toLowerCase(), metadata: {}, size: null, checksum: null, format: null };
      } catch (err) {
        if (!(err instanceof ProviderError && err.kind === 'notfound')) throw err;
      }
    }
    if (!found) {
      const all = await this.session.pk<RawImage[]>('compute', 'GET', 'images_detail', 'getCloudImage', 'compute GET /images/detail',
        (cb) => this.session.compute.getImages(cb));
      const named = all.filter((im) => im.name === nameOrId);
      if (named.length > 1) {
        throw new ProviderError(this.name, 'fatal', `more than one image is named ${nameOrId} in cloud ${this.config.cloud}; use image-id`,
          { operation: 'getCloudImage' });
      }
      const im = named[0];
      if (im) found = { id: im.id, name: im.name, status: String(im.status).toLowerCase(), metadata: {}, size: null, checksum: null, format: null };
    }
    this.imageCache.set(nameOrId, { at: Date.now(), value: found });
    return found ? { ...found } : null;
  }

  // ---- test and tool helpers (not part of ProviderManager) -----------------------------------

  /** The project the session is scoped to (after the first call). */
  projectId(): string | null {
    return this.session.projectId();
  }
}

export function createOpenStackProvider(config: OpenStackProvider, opts: OpenStackProviderOptions = {}): OpenStackProviderManager {
  return new OpenStackProviderManager(config, opts);
}
