// An in-process cloud behaving like Nodepool's fake OpenStack: servers boot, fail, use quota and
// get deleted, images are uploaded and deleted — with the failures of a real cloud injectable
// from `faults` so every launcher and builder error path can be exercised without OpenStack.
//
// Server state is derived from timestamps decided at create/delete time (BUILD until activeAt,
// then ACTIVE or ERROR; DELETED until goneAt), so no timer runs per server and processes sharing
// a state file agree on every server's status.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import type { CloudPoolLabel, FakeFaults, FakeProvider, FakeQuota } from '@nodepool-ts/core/config';
import {
  NotFoundError, ProviderAbortedError, ProviderError, ProviderTimeoutError, QuotaExceededError,
  RateLimiter, ServerStatusError, ZERO_USAGE, addUsage, flavorResources, isManagedServer, requireFlavor,
  sortFlavorsByRam,
} from '@nodepool-ts/core/provider';
import type {
  FlavorInfo, ImageInfo, LabelResources, ProviderManager, QuotaInfo, ServerInfo, ServerSpec,
  UploadImageOptions,
} from '@nodepool-ts/core/provider';
import { Prng, parseSeed } from './prng.js';
import { FileStore, MemoryStore } from './store.js';
import type { FakeCloudState, StateStore, StoredImage, StoredServer } from './store.js';

/** Nodepool's MAX_QUOTA_AGE (§3.1): tenant limits are re-read at most every 5 minutes. */
export const MAX_QUOTA_AGE_MS = 300_000;

/** Flavors of Nodepool's fake cloud, used when the config lists none. */
export const DEFAULT_FAKE_FLAVORS: readonly FlavorInfo[] = Object.freeze([
  { id: 'f1', name: 'Fake Flavor', vcpus: 4, ram: 8192 },
  { id: 'f2', name: 'Unreal Flavor', vcpus: 4, ram: 8192 },
]);

/** The image Nodepool's fake cloud always has, so `cloud-image: Fake Precise` fixtures work. */
export const DEFAULT_FAKE_IMAGE = Object.freeze({ id: 'fake-image-id', name: 'Fake Precise' });

/** Hypervisors per AZ; servers in one AZ share a handful of host ids like a small real cloud. */
const HYPERVISORS_PER_AZ = 4;

export interface FakeProviderOptions {
  /** PRNG seed for fault injection and AZ/host choice; default env NODEPOOL_FAKE_SEED, else random */
  seed?: number | string;
  /** overrides `config.stateFile` (tests) */
  stateFile?: string | null;
  /** give up on a state-file lock held this long by a live process */
  lockTimeoutMs?: number;
}

/**
 * Addresses are unique and plausible instead of Nodepool's literal 'fake', so tests can tell
 * nodes apart by IP: private from 10.0.0.0/8, public v4 from 198.18.0.0/15 (RFC 2544
 * benchmarking space — 130k addresses where 203.0.113.0/24 has only 254, and never routed),
 * public v6 from 2001:db8::/32 (documentation prefix). Index n is the cloud-wide counter.
 * As in Nodepool's fake, a server has a public IPv6 address only when booted on a network
 * whose name contains "ipv6" (Nodepool prefers IPv6 for interface_ip, so it is opt-in).
 */
export function fakeAddresses(n: number): { privateIpv4: string; publicIpv4: string; publicIpv6: string } {
  const host = 1 + ((n - 1) % 254);
  const net = Math.floor((n - 1) / 254);
  return {
    privateIpv4: `10.${(net >> 8) & 255}.${net & 255}.${host}`,
    publicIpv4: `198.${18 + ((net >> 8) & 1)}.${net & 255}.${host}`,
    publicIpv6: `2001:db8::${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`,
  };
}

export class FakeProviderManager implements ProviderManager {
  readonly kind = 'cloud' as const;
  readonly driver = 'fake';
  readonly name: string;
  readonly seed: number;
  /** the provider config this cloud was built from (the launcher compares it on reload) */
  readonly config: FakeProvider;

  private faults: FakeFaults;
  private quota: FakeQuota;
  private readonly flavors: FlavorInfo[];
  private readonly prng: Prng;
  private readonly limiter: RateLimiter;
  private readonly stopController = new AbortController();
  private readonly stateFile: string | null;
  /** image ids deleted from the in-memory cloud (see resolveBootImage) */
  private readonly deletedImages = new Set<string>();
  private readonly lockTimeoutMs: number | undefined;
  private store: StateStore | null = null;
  private quotaCache: { at: number; value: QuotaInfo } | null = null;
  private stopped = false;

  constructor(config: FakeProvider, opts: FakeProviderOptions = {}) {
    this.config = config;
    this.name = config.name;
    this.faults = { ...config.faults };
    this.quota = { ...config.quota };
    this.flavors = sortFlavorsByRam(config.flavors.length > 0
      ? config.flavors.map((f) => ({ id: f.id, name: f.name, vcpus: f.vcpus, ram: f.ram }))
      : DEFAULT_FAKE_FLAVORS);
    const envSeed = process.env.NODEPOOL_FAKE_SEED;
    this.seed = parseSeed(opts.seed ?? (envSeed !== undefined && envSeed !== '' ? envSeed
      : Math.floor(Math.random() * 2 ** 32)));
    this.prng = new Prng(this.seed);
    this.limiter = new RateLimiter(config.rate, config.name);
    this.stateFile = opts.stateFile !== undefined ? opts.stateFile : config.stateFile;
    this.lockTimeoutMs = opts.lockTimeoutMs;
  }

  // ---- lifecycle -------------------------------------------------------------------------

  async start(): Promise<void> {
    if (this.stopped) throw new ProviderError(this.name, 'fatal', 'provider was stopped; create a new one');
    if (this.store) return;
    this.store = this.stateFile
      ? new FileStore(this.name, this.stateFile,
        this.lockTimeoutMs !== undefined ? { lockTimeoutMs: this.lockTimeoutMs } : {})
      : new MemoryStore();
    const wanted = [{ ...DEFAULT_FAKE_IMAGE }, ...this.config.cloudImages.map((ci) => ({
      id: ci.imageId ?? stableId(`cloud-image:${ci.imageName ?? ci.name}`),
      name: ci.imageName ?? ci.name,
    }))];
    const state = this.store.read();
    const missing = wanted.filter((w) => !state.images[w.id]
      && !Object.values(state.images).some((i) => i.name === w.name));
    if (missing.length > 0) {
      await this.store.update((s) => {
        for (const w of missing) {
          if (s.images[w.id] || Object.values(s.images).some((i) => i.name === w.name)) continue;
          s.images[w.id] = {
            id: w.id, name: w.name, status: 'active', metadata: {}, size: null, checksum: null,
            sha256: null, format: null, createdAt: Date.now(),
          };
        }
      });
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.limiter.close();
    this.stopController.abort();
    this.store?.close();
  }

  // ---- test controls (not part of ProviderManager) --------------------------------------

  /** Change fault injection at run time, e.g. to let a failing cloud recover mid-test. */
  setFaults(faults: Partial<FakeFaults>): void {
    this.faults = { ...this.faults, ...faults };
  }

  /**
   * Change the tenant limits. Like a real cloud, callers see the new values only after the
   * quota cache expires or is invalidated; creates are checked against them at once.
   */
  setQuota(quota: Partial<FakeQuota>): void {
    this.quota = { ...this.quota, ...quota };
  }

  /** Everything the cloud recorded for a server (key name, userdata, networks ...) for assertions. */
  inspectServer(id: string): Readonly<StoredServer> | null {
    const s = this.state().servers[id];
    return s && !isGone(s, Date.now()) ? structuredClone(s) : null;
  }

  /**
   * The SSH host key a keyscan of this server would find (LauncherHooks.hostKeys): the fake has
   * no sshd, so the launcher asks the cloud. A well-formed ed25519 public key derived from the
   * server id: stable for a server, different between servers.
   */
  async hostKeys(server: Pick<ServerInfo, 'id'>): Promise<string[]> {
    this.ensureRunning('hostKeys');
    const type = Buffer.from('ssh-ed25519');
    const key = createHash('sha256').update(`fake-host-key:${server.id}`).digest();
    const len = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
    const blob = Buffer.concat([len(type.length), type, len(key.length), key]);
    return [`ssh-ed25519 ${blob.toString('base64')}`];
  }

  // ---- flavors, AZs, quota -----------------------------------------------------------------
  // Static data of the fake cloud: like the OpenStack driver's caches, these make no API call
  // and so are neither rate limited nor subject to apiErrorRate.

  async listAzs(): Promise<string[]> {
    this.ensureRunning('listAzs');
    return [...this.config.azs];
  }

  async listFlavors(): Promise<FlavorInfo[]> {
    this.ensureRunning('listFlavors');
    return this.flavors.map((f) => ({ ...f }));
  }

  async findFlavor(label: CloudPoolLabel): Promise<FlavorInfo> {
    this.ensureRunning('findFlavor');
    return { ...requireFlavor(this.name, this.flavors, label) };
  }

  async resourcesForLabel(label: CloudPoolLabel): Promise<LabelResources> {
    return flavorResources(await this.findFlavor(label));
  }

  async getQuota(): Promise<QuotaInfo> {
    this.ensureRunning('getQuota');
    const cached = this.quotaCache;
    if (cached && Date.now() - cached.at < MAX_QUOTA_AGE_MS) return { ...cached.value };
    return this.api('getQuota', () => {
      const value = { instances: this.quota.instances, cores: this.quota.cores, ram: this.quota.ram };
      this.quotaCache = { at: Date.now(), value };
      return { ...value };
    });
  }

  invalidateQuotaCache(): void {
    this.quotaCache = null;
  }

  async unmanagedUsage(knownNodeIds: ReadonlySet<string>): Promise<QuotaInfo> {
    return this.api('unmanagedUsage', () => {
      const now = Date.now();
      let usage: QuotaInfo = { ...ZERO_USAGE };
      for (const s of Object.values(this.state().servers)) {
        if (isGone(s, now) || isManagedServer(s, this.name, knownNodeIds)) continue;
        usage = addUsage(usage, flavorResources(s.flavor));
      }
      return usage;
    });
  }

  // ---- servers -----------------------------------------------------------------------------

  async createServer(spec: ServerSpec): Promise<ServerInfo> {
    return this.api('createServer', async () => {
      const f = this.faults;
      if (f.quotaExceeded) {
        throw new QuotaExceededError(this.name, 'quota exceeded for instances (injected fault)', null,
          { operation: 'createServer' });
      }
      if (this.prng.chance(f.createFailureRate) || spec.metadata.SHOULD_FAIL?.toLowerCase() === 'true') {
        throw new ProviderError(this.name, 'retryable', 'HTTP 500: fake cloud failed to create the server',
          { operation: 'createServer' });
      }
      if (!this.flavors.some((x) => x.id === spec.flavor.id)) {
        throw new ProviderError(this.name, 'fatal', `HTTP 400: flavor ${spec.flavor.id} could not be found`,
          { operation: 'createServer' });
      }
      if (spec.az !== null && this.config.azs.length > 0 && !this.config.azs.includes(spec.az)) {
        throw new ProviderError(this.name, 'fatal', `HTTP 400: availability zone ${spec.az} is unknown`,
          { operation: 'createServer' });
      }
      // Outcome draws happen before the store update so `fn` below is pure and retry-safe.
      const willError = this.prng.chance(f.errorRate);
      const az = spec.az ?? (this.config.azs.length > 0
        ? this.config.azs[this.prng.int(this.config.azs.length)] ?? null : null);
      const hypervisor = this.prng.int(HYPERVISORS_PER_AZ);
      const bootDelay = Math.max(0, f.bootDelay);
      const flavor = { ...spec.flavor };
      const limits = { ...this.quota };

      const server = await this.requireStore().update((state) => {
        const imageId = this.resolveBootImage(state, spec);
        checkTenantQuota(this.name, state, flavor, limits);
        const now = Date.now();
        const n = state.nextAddress;
        const s: StoredServer = {
          id: randomUUID().replace(/-/g, ''),
          name: spec.name,
          createdAt: now,
          activeAt: now + bootDelay,
          bootResult: willError ? 'ERROR' : 'ACTIVE',
          fault: willError ? 'No valid host was found. (injected fault)' : null,
          deletedAt: null,
          goneAt: null,
          az,
          hostId: createHash('sha224').update(`${this.name}:${az ?? 'nova'}:${hypervisor}`).digest('hex'),
          ...fakeAddresses(n),
          autoFloatingIp: spec.autoFloatingIp ?? true,
          ipv6: spec.networks.some((net) => net.toLowerCase().includes('ipv6')),
          flavor,
          imageId,
          keyName: spec.keyName,
          networks: [...spec.networks],
          securityGroups: [...spec.securityGroups],
          userdata: spec.userdata,
          bootFromVolume: spec.bootFromVolume,
          volumeSize: spec.volumeSize,
          configDrive: spec.configDrive,
          metadata: { ...spec.metadata },
        };
        pruneGone(state, now);
        state.nextAddress = n + 1;
        state.servers[s.id] = s;
        return s;
      });
      return toServerInfo(server, Date.now());
    });
  }

  async getServer(id: string): Promise<ServerInfo | null> {
    return this.api('getServer', () => {
      const s = this.state().servers[id];
      const now = Date.now();
      return s && !isGone(s, now) ? toServerInfo(s, now) : null;
    });
  }

  async waitForServer(id: string, timeoutMs: number, signal?: AbortSignal): Promise<ServerInfo> {
    return this.api('waitForServer', async () => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        this.checkAborted('waitForServer', signal);
        const now = Date.now();
        const s = this.state().servers[id];
        if (!s || isGone(s, now)) throw new NotFoundError(this.name, 'server', id, { operation: 'waitForServer' });
        const info = toServerInfo(s, now);
        if (info.status === 'ACTIVE') return info;
        if (info.status !== 'BUILD') {
          throw new ServerStatusError(this.name, id, info.status, info.fault, { operation: 'waitForServer' });
        }
        if (now >= deadline) throw new ProviderTimeoutError(this.name, `server ${id} to become ACTIVE`, timeoutMs);
        await this.pause(Math.min(s.activeAt, deadline) - now, signal);
      }
    }, signal);
  }

  async listServers(): Promise<ServerInfo[]> {
    return this.api('listServers', () => {
      const now = Date.now();
      return Object.values(this.state().servers).filter((s) => !isGone(s, now)).map((s) => toServerInfo(s, now));
    });
  }

  async deleteServer(id: string): Promise<void> {
    return this.api('deleteServer', async () => {
      const f = this.faults;
      const s0 = this.state().servers[id];
      if (!s0 || isGone(s0, Date.now())) throw new NotFoundError(this.name, 'server', id, { operation: 'deleteServer' });
      if (this.prng.chance(f.deleteFailureRate)) {
        throw new ProviderError(this.name, 'retryable', `HTTP 500: fake cloud failed to delete server ${id}`,
          { operation: 'deleteServer' });
      }
      const delay = Math.max(0, f.deleteDelay);
      await this.requireStore().update((state) => {
        const now = Date.now();
        const s = state.servers[id];
        if (!s || isGone(s, now)) throw new NotFoundError(this.name, 'server', id, { operation: 'deleteServer' });
        if (s.deletedAt === null) {
          state.servers[id] = { ...s, deletedAt: now, goneAt: now + delay };
        } else if (s.goneAt === null || s.goneAt > now + delay) {
          // A repeated delete is another attempt, as in Nova: once the fault that held the first
          // one (a long delete-delay) is lifted, it completes on the current schedule.
          state.servers[id] = { ...s, goneAt: now + delay };
        }
        pruneGone(state, now);
      });
    });
  }

  async waitForServerDeletion(id: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.api('waitForServerDeletion', async () => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        this.checkAborted('waitForServerDeletion', signal);
        const now = Date.now();
        const s = this.state().servers[id];
        if (!s || isGone(s, now)) return;
        if (now >= deadline) throw new ProviderTimeoutError(this.name, `server ${id} to be deleted`, timeoutMs);
        // A server nobody deletes never goes; poll so a delete from another process is seen.
        const wake = s.goneAt !== null ? Math.min(s.goneAt, deadline) - now : Math.min(deadline - now, 100);
        await this.pause(wake, signal);
      }
    }, signal);
  }

  async getConsoleLog(id: string): Promise<string> {
    return this.api('getConsoleLog', () => {
      const now = Date.now();
      const s = this.state().servers[id];
      if (!s || isGone(s, now)) throw new NotFoundError(this.name, 'server', id, { operation: 'getConsoleLog' });
      const info = toServerInfo(s, now);
      return [
        `[    0.000000] Linux version 5.10.0-fake (fake-cloud) #1 SMP`,
        `[    1.234567] fake-cloud: booting ${s.name} (${s.id}) flavor ${s.flavor.name} image ${s.imageId}`,
        info.status === 'ACTIVE'
          ? `[    2.345678] cloud-init: ${s.name} up, address ${info.interfaceIp ?? 'none'}`
          : `[    2.345678] fake-cloud: server status ${info.status}`,
        '',
      ].join('\n');
    });
  }

  // ---- images ------------------------------------------------------------------------------

  async uploadImage(opts: UploadImageOptions): Promise<ImageInfo> {
    return this.api('uploadImage', async () => {
      let size: number;
      try {
        size = statSync(opts.file).size;
      } catch (err) {
        throw new ProviderError(this.name, 'fatal', `cannot read image file ${opts.file}`,
          { operation: 'uploadImage', cause: err });
      }
      // Nothing is copied: the fake records what Glance would (size, md5), reading the file only
      // when the caller has no checksum for it.
      let checksum: string;
      try {
        checksum = opts.md5 ?? await md5File(opts.file, size, opts.onProgress, opts.signal);
      } catch (err) {
        this.checkAborted('uploadImage', opts.signal);
        throw new ProviderError(this.name, 'fatal', `cannot read image file ${opts.file}`,
          { operation: 'uploadImage', cause: err });
      }
      if (opts.md5 !== undefined) opts.onProgress?.(size, size);
      this.checkAborted('uploadImage', opts.signal);
      const image: StoredImage = {
        id: randomUUID(),
        name: opts.name,
        status: 'active',
        metadata: { ...opts.metadata },
        size,
        checksum,
        sha256: opts.sha256 ?? null,
        format: opts.format,
        createdAt: Date.now(),
      };
      await this.requireStore().update((state) => { state.images[image.id] = image; });
      return toImageInfo(image);
    }, opts.signal);
  }

  async deleteImage(nameOrId: string): Promise<void> {
    return this.api('deleteImage', () => this.requireStore().update((state) => {
      const img = findImage(state, nameOrId);
      if (!img) throw new NotFoundError(this.name, 'image', nameOrId, { operation: 'deleteImage' });
      if (img === 'ambiguous') {
        throw new ProviderError(this.name, 'fatal', `more than one image is named ${nameOrId}; delete by id`,
          { operation: 'deleteImage' });
      }
      delete state.images[img.id];
      if (this.stateFile === null) this.deletedImages.add(img.id);
    }));
  }

  async listImages(): Promise<ImageInfo[]> {
    return this.api('listImages', () => Object.values(this.state().images).map(toImageInfo));
  }

  async getCloudImage(nameOrId: string): Promise<ImageInfo | null> {
    return this.api('getCloudImage', () => {
      const img = findImage(this.state(), nameOrId);
      if (img === 'ambiguous') {
        throw new ProviderError(this.name, 'fatal', `more than one image is named ${nameOrId}`,
          { operation: 'getCloudImage' });
      }
      return img ? toImageInfo(img) : null;
    });
  }

  // ---- internals -------------------------------------------------------------------------

  /**
   * One cloud API call: rate limited (config `rate`), then subject to apiErrorRate like an
   * HTTP 500 from any OpenStack endpoint.
   */
  private async api<T>(operation: string, fn: () => Promise<T> | T, signal?: AbortSignal): Promise<T> {
    this.ensureRunning(operation);
    return this.limiter.run(() => {
      this.ensureRunning(operation);
      if (this.prng.chance(this.faults.apiErrorRate)) {
        throw new ProviderError(this.name, 'retryable', `HTTP 500: fake cloud API error in ${operation}`,
          { operation });
      }
      return fn();
    }, signal ? { operation, signal } : { operation });
  }

  private ensureRunning(operation: string): void {
    if (this.stopped) throw new ProviderAbortedError(this.name, operation);
    if (!this.store) throw new ProviderError(this.name, 'fatal', `${operation} called before start()`, { operation });
  }

  private requireStore(): StateStore {
    if (!this.store) throw new ProviderError(this.name, 'fatal', 'provider not started');
    return this.store;
  }

  private state(): FakeCloudState {
    return this.requireStore().read();
  }

  private checkAborted(operation: string, signal: AbortSignal | undefined): void {
    if (this.stopped || signal?.aborted) throw new ProviderAbortedError(this.name, operation);
  }

  /** Sleeps, waking early (without error) on stop() or the caller's abort; callers re-check. */
  private pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
    const signals = signal ? [this.stopController.signal, signal] : [this.stopController.signal];
    return new Promise((resolve) => {
      if (signals.some((s) => s.aborted)) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        for (const s of signals) s.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, ms));
      for (const s of signals) s.addEventListener('abort', done, { once: true });
    });
  }

  /**
   * The image a boot uses; Nova answers 400 for an image it does not have. One exception: a
   * cloud kept in memory cannot see what another process uploaded, and Nodepool's usual setup
   * is exactly that (nodepool-builder and nodepool-launcher as two daemons on one fake
   * provider), so an upload id it has never seen is booted as given, as Nodepool's fake does.
   * One this process deleted still fails; with a state file the cloud is shared and exact.
   */
  private resolveBootImage(state: FakeCloudState, spec: ServerSpec): string {
    const im = spec.image;
    const ref = im.kind === 'upload' ? im.externalId : im.id ?? im.name;
    const found = im.kind === 'upload' || im.id !== null ? state.images[ref] : findImage(state, ref);
    if (!found && im.kind === 'upload' && this.stateFile === null && !this.deletedImages.has(ref)) return ref;
    if (!found || found === 'ambiguous' || found.status !== 'active') {
      throw new ProviderError(this.name, 'fatal',
        `HTTP 400: image ${ref} ${found === 'ambiguous' ? 'is ambiguous' : 'could not be found'}`,
        { operation: 'createServer' });
    }
    return found.id;
  }
}

export function createFakeProvider(config: FakeProvider, opts: FakeProviderOptions = {}): FakeProviderManager {
  return new FakeProviderManager(config, opts);
}

// ---- pure helpers ------------------------------------------------------------------------------

function isGone(s: StoredServer, now: number): boolean {
  return s.goneAt !== null && now >= s.goneAt;
}

function pruneGone(state: FakeCloudState, now: number): void {
  for (const [id, s] of Object.entries(state.servers)) if (isGone(s, now)) delete state.servers[id];
}

function statusAt(s: StoredServer, now: number): ServerInfo['status'] {
  if (s.deletedAt !== null) return 'DELETED';
  if (now < s.activeAt) return 'BUILD';
  return s.bootResult;
}

function toServerInfo(s: StoredServer, now: number): ServerInfo {
  const status = statusAt(s, now);
  // Nova reports addresses once networking is wired (ACTIVE); an ERROR server has none. Without
  // auto-floating-ip the public addresses go away, as in Nodepool's fake.
  const booted = now >= s.activeAt && s.bootResult === 'ACTIVE';
  const publicIpv4 = booted && s.autoFloatingIp ? s.publicIpv4 : null;
  const privateIpv4 = booted ? s.privateIpv4 : null;
  return {
    id: s.id,
    name: s.name,
    status,
    az: s.az,
    hostId: booted ? s.hostId : null,
    publicIpv4,
    privateIpv4,
    publicIpv6: booted && s.autoFloatingIp && s.ipv6 ? s.publicIpv6 : null,
    interfaceIp: publicIpv4 ?? privateIpv4,
    flavorId: s.flavor.id,
    imageId: s.imageId,
    fault: status === 'ERROR' ? s.fault : null,
    metadata: { ...s.metadata },
  };
}

function toImageInfo(i: StoredImage): ImageInfo {
  return {
    id: i.id, name: i.name, status: i.status, metadata: { ...i.metadata }, size: i.size,
    checksum: i.checksum, format: i.format,
  };
}

function findImage(state: FakeCloudState, nameOrId: string): StoredImage | 'ambiguous' | null {
  const byId = state.images[nameOrId];
  if (byId) return byId;
  const byName = Object.values(state.images).filter((i) => i.name === nameOrId);
  if (byName.length > 1) return 'ambiguous';
  return byName[0] ?? null;
}

/** Nova's own quota check: every server in the tenant counts until it is gone. */
function checkTenantQuota(provider: string, state: FakeCloudState, flavor: FlavorInfo, limits: FakeQuota): void {
  const now = Date.now();
  let used: QuotaInfo = { ...ZERO_USAGE };
  for (const s of Object.values(state.servers)) {
    if (!isGone(s, now)) used = addUsage(used, flavorResources(s.flavor));
  }
  const need = flavorResources(flavor);
  for (const resource of ['instances', 'cores', 'ram'] as const) {
    const limit = limits[resource];
    if (used[resource] + need[resource] > limit) {
      throw new QuotaExceededError(provider,
        `quota exceeded for ${resource}: requested ${need[resource]}, but already used ${used[resource]} of ${limit}`,
        { resource, requested: need[resource], used: used[resource], limit }, { operation: 'createServer' });
    }
  }
}

/** A uuid-shaped id derived from a name, so processes sharing a state file agree on it. */
function stableId(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function md5File(path: string, total: number, onProgress: UploadImageOptions['onProgress'],
  signal: AbortSignal | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('md5');
    let done = 0;
    const stream = createReadStream(path, signal ? { signal } : {});
    stream.on('data', (chunk) => {
      hash.update(chunk);
      done += chunk.length;
      onProgress?.(done, total);
    });
    stream.on('error', reject);
    stream.on('end', () => resolve(hash.digest('hex')));
  });
}
