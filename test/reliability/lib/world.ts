// One scenario's world: a temp dir, a ZooKeeper chroot (on the suite's server or on a private
// ensemble), a fake cloud shared by every launcher through its state file, launcher processes,
// and the checks every scenario ends with: nothing lost, nothing leaked, nothing allocated twice.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { StoredServer } from '@nodepool-ts/driver-fake';
import type { Node } from '@nodepool-ts/core/model';
import { ZooKeeper } from '@nodepool-ts/core/zk';
import { configureLogging } from '@nodepool-ts/core/log';
import { ZUUL_REQUESTOR, zkRetry } from '../../../bench/zuul-client.js';
import { LauncherProcess, type LauncherProcessOptions } from './procs.js';

configureLogging({ level: (process.env.NODEPOOL_TEST_LOG_LEVEL as 'info' | undefined) ?? 'silent' });

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The suite's ZooKeeper (scripts/run-tests.mjs passes it), else the development one. */
export function sharedZkHosts(): string {
  return process.env.NODEPOOL_TEST_ZK ?? '127.0.0.1:21810';
}

export async function waitUntil<T>(what: string, fn: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  timeoutMs = 30_000, stepMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await fn();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    }
    await sleep(stepMs);
  }
}

/** A server as the leak checks see it, whichever cloud holds it. */
export interface ServerView {
  id: string;
  /** `nodepool_node_id` of its metadata */
  nodeId: string | null;
  /** a delete was accepted (the server may still show, as DELETED or deleting) */
  deleting: boolean;
  createdAt: number;
}

export interface FakeFaultsYaml {
  'boot-delay'?: number;
  'create-failure-rate'?: number;
  'error-rate'?: number;
  'api-error-rate'?: number;
  'quota-exceeded'?: boolean;
  'delete-failure-rate'?: number;
  'delete-delay'?: number;
}

export interface FakeConfigOptions {
  labels?: { name: string; minReady?: number }[];
  maxServers?: number;
  faults?: FakeFaultsYaml;
  /** provider keys, indented for the provider mapping (e.g. `    launch-timeout: 5\n`) */
  providerExtra?: string;
  /** top-level keys (e.g. `dburi: ...`) */
  top?: string;
  rate?: number;
}

export interface WorldOptions {
  /** ZooKeeper connect string without chroot (default: the suite's server) */
  zkHosts?: string;
  /** session timeout of the world's own client (the load generator); default 30 s */
  clientSessionTimeoutMs?: number;
  prefix?: string;
}

export class World {
  readonly dir: string;
  readonly chroot: string;
  readonly zkHosts: string;
  readonly stateFile: string;
  readonly configFile: string;
  readonly launchers: LauncherProcess[] = [];
  zk!: ZooKeeper;
  private readonly clientSessionTimeoutMs: number;
  /** where the servers are read from: the fake cloud's state file unless a scenario sets another */
  serverSource: () => Promise<ServerView[]> = async () => this.cloudServers().map((s) => ({
    id: s.id, nodeId: s.metadata.nodepool_node_id ?? null, deleting: s.deletedAt !== null, createdAt: s.createdAt,
  }));
  private readonly cleanups: (() => Promise<void> | void)[] = [];
  private launcherCount = 0;

  constructor(opts: WorldOptions = {}) {
    this.dir = mkdtempSync(join(tmpdir(), `${opts.prefix ?? 'np-rel'}-`));
    this.chroot = `/rel-${randomBytes(6).toString('hex')}`;
    this.zkHosts = opts.zkHosts ?? sharedZkHosts();
    this.stateFile = join(this.dir, 'fake-cloud.json');
    this.configFile = join(this.dir, 'nodepool.yaml');
    this.clientSessionTimeoutMs = opts.clientSessionTimeoutMs ?? 30_000;
  }

  async start(): Promise<this> {
    this.zk = await this.connect(this.clientSessionTimeoutMs);
    return this;
  }

  /** Another client of this world's chroot (e.g. a second Zuul). */
  async connect(sessionTimeoutMs = 30_000): Promise<ZooKeeper> {
    const zk = new ZooKeeper({ servers: `${this.zkHosts}${this.chroot}`, sessionTimeoutMs, connectTimeoutMs: 20_000 });
    // every Zuul job of the load waits for a reconnection on its own ('state'/'close' listeners)
    zk.setMaxListeners(0);
    await zk.connect();
    this.cleanups.push(() => zk.close());
    return zk;
  }

  onCleanup(fn: () => Promise<void> | void): void {
    this.cleanups.push(fn);
  }

  /** `zookeeper-servers:` for this world: every host of the connect string, with the chroot. */
  zkYaml(): string {
    const lines = this.zkHosts.split(',').map((hp) => {
      const [host = '127.0.0.1', port = '2181'] = hp.split(':');
      return `  - host: ${host}\n    port: ${port}\n    chroot: ${this.chroot}`;
    });
    return `zookeeper-servers:\n${lines.join('\n')}\n`;
  }

  /** A nodepool.yaml for a fake provider whose cloud is the shared state file. */
  fakeConfig(opts: FakeConfigOptions = {}): string {
    const labels = opts.labels ?? [{ name: 'small', minReady: 0 }];
    const faults = Object.entries(opts.faults ?? {});
    return `${this.zkYaml()}
${opts.top ?? ''}
labels:
${labels.map((l) => `  - name: ${l.name}\n    min-ready: ${l.minReady ?? 0}`).join('\n')}
providers:
  - name: fake-provider
    driver: fake
    rate: ${opts.rate ?? 0.0001}
    state-file: ${this.stateFile}
${faults.length > 0 ? `    faults:\n${faults.map(([k, v]) => `      ${k}: ${String(v)}`).join('\n')}\n` : ''}${opts.providerExtra ?? ''}    cloud-images:
      - name: fake-image
    pools:
      - name: main
        max-servers: ${opts.maxServers ?? 200}
        labels:
${labels.map((l) => `          - name: ${l.name}\n            cloud-image: fake-image\n            min-ram: 8192`).join('\n')}
`;
  }

  writeConfig(text: string, file = this.configFile): string {
    writeFileSync(file, text);
    return file;
  }

  /** Start a launcher process on this world's config (or `config`). */
  startLauncher(opts: Partial<LauncherProcessOptions> = {}): LauncherProcess {
    const name = `launcher-${++this.launcherCount}`;
    const l = new LauncherProcess(name, { dir: this.dir, config: this.configFile, ...opts, env: { NODEPOOL_STATE_DIR: join(this.dir, `state-${name}`), ...(opts.env ?? {}) } });
    this.launchers.push(l);
    return l;
  }

  /** Wait until each of `procs` registered its pool workers. */
  async waitRegistered(procs: LauncherProcess[], timeoutMs = 30_000): Promise<void> {
    await waitUntil(`launchers ${procs.map((p) => p.name).join(', ')} registered`, async () => {
      const ids = (await this.zk.getRegisteredLaunchers()).map((l) => l.id);
      for (const p of procs) {
        if (!p.running) throw new Error(`${p.name} exited:\n${p.tail()}`);
      }
      return procs.every((p) => ids.some((id) => id.includes(p.idFragment)));
    }, timeoutMs, 100);
  }

  /** Servers of the shared fake cloud as stored in its state file (every process sees this). */
  cloudServers(): StoredServer[] {
    let text: string;
    try {
      text = readFileSync(this.stateFile, 'utf8');
    } catch {
      return [];
    }
    const state = JSON.parse(text) as { servers?: Record<string, StoredServer> };
    const now = Date.now();
    return Object.values(state.servers ?? {}).filter((s) => s.goneAt === null || s.goneAt > now);
  }

  /** Servers neither deleted nor being deleted. */
  liveServers(): StoredServer[] {
    return this.cloudServers().filter((s) => s.deletedAt === null);
  }

  async nodes(): Promise<Node[]> {
    return zkRetry(this.zk, () => this.zk.getNodes());
  }

  /**
   * Leaks right now: live servers no node znode accounts for (by external id or by the node id in
   * their metadata), node znodes not at rest (anything but READY and unallocated, or allocated
   * to a request that exists), requests of our load client left behind.
   */
  async leaks(): Promise<Leaks> {
    const nodes = await this.nodes();
    const requests = new Set(await zkRetry(this.zk, () => this.zk.getNodeRequestIds()));
    const byExternal = new Set(nodes.map((n) => n.external_id).filter((x): x is string => !!x));
    const ids = new Set(nodes.map((n) => n.id));
    const live = (await this.serverSource()).filter((s) => !s.deleting);
    const servers = live.filter((s) => !byExternal.has(s.id) && !ids.has(s.nodeId ?? ''));
    const restless = nodes.filter((n) => !(n.state === 'ready' && (n.allocated_to === null || requests.has(n.allocated_to))));
    const strayRequests = (await zkRetry(this.zk, () => this.zk.getNodeRequests()))
      .filter((r) => r.requestor === ZUUL_REQUESTOR).map((r) => r.id ?? '');
    const locked = await Promise.all(restless.map((n) => zkRetry(this.zk, () => this.zk.nodeLockHasContenders(n.id ?? '')).catch(() => false)));
    return {
      servers: servers.map((s) => s.id),
      nodes: restless.map((n, i) => `${n.id}:${n.state}${n.allocated_to ? `@${n.allocated_to}` : ''}${locked[i] ? ':locked' : ''}`),
      requests: strayRequests,
      liveServers: live.length,
      readyNodes: nodes.filter((n) => n.state === 'ready').length,
    };
  }

  /**
   * Wait until nothing is leaked (the load must have stopped): returns the leaks left after
   * `timeoutMs` (all empty on success) and how long settling took.
   */
  async settle(timeoutMs = 60_000): Promise<{ leaks: Leaks; ms: number }> {
    const t0 = Date.now();
    let leaks = await this.leaks();
    while (!isClean(leaks) && Date.now() - t0 < timeoutMs) {
      await sleep(250);
      leaks = await this.leaks();
    }
    return { leaks, ms: Date.now() - t0 };
  }

  /** Remove requests our load client left (e.g. a submit whose reply was lost). */
  async removeStrayRequests(): Promise<number> {
    let n = 0;
    for (const r of await zkRetry(this.zk, () => this.zk.getNodeRequests())) {
      if (r.requestor !== ZUUL_REQUESTOR || r.id === null) continue;
      const id = r.id;
      await zkRetry(this.zk, () => this.zk.deleteNodeRequest(id));
      n++;
    }
    return n;
  }

  /** Every launcher's log lines of at least `level` (warn, error). */
  launcherLog(level: 'warn' | 'error' | 'info' = 'warn'): { launcher: string; line: import('./procs.js').LogLine }[] {
    const rank = { trace: 0, debug: 1, info: 2, warn: 3, error: 4, fatal: 5, raw: 3 } as Record<string, number>;
    const min = rank[level] ?? 3;
    return this.launchers.flatMap((l) => l.logLines().filter((x) => (rank[x.level] ?? 3) >= min).map((line) => ({ launcher: l.name, line })));
  }

  async close(opts: { keep?: boolean } = {}): Promise<void> {
    await Promise.allSettled(this.launchers.map((l) => l.stop()));
    // the chroot goes with a client of the whole server (kept for a post-mortem on request)
    if (!process.env.NODEPOOL_KEEP_RELIABILITY) try {
      const root = new ZooKeeper({ servers: this.zkHosts, connectTimeoutMs: 10_000 });
      await root.connect();
      await root.deleteRecursive(this.chroot).catch(() => undefined);
      await root.close();
    } catch {
      // the ensemble of a scenario may already be gone
    }
    for (const c of this.cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
    if (!opts.keep && !process.env.NODEPOOL_KEEP_RELIABILITY) rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface Leaks {
  /** live servers without a node */
  servers: string[];
  /** nodes not at rest */
  nodes: string[];
  /** load-client requests left behind */
  requests: string[];
  liveServers: number;
  readyNodes: number;
}

export function isClean(l: Leaks): boolean {
  return l.servers.length === 0 && l.nodes.length === 0 && l.requests.length === 0;
}
