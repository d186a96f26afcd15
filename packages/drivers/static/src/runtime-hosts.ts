// Static hosts added at runtime (`nodepool static-host add`, `POST /api/v1/static-hosts`), without editing
// nodepool.yaml: Cloudify Host-pool's "add/delete hosts" in Nodepool's model. A runtime host is a
// static node definition of a configured static provider and pool, kept in ZooKeeper at
// `/nodepool/static-hosts/<provider>/<host>` (a nodepool-ts path; Nodepool and Zuul ignore it),
// so it survives restarts and every launcher serving that provider sees it. The launchers
// register it exactly like a configured host. Host-pool's `os` and `tags` are kept as metadata:
// `list` filters on them and they are copied into the node's `attributes`.
import type { Config, StaticNode, StaticPool, StaticProvider } from '@nodepool-ts/core/config';
import { parseJsonObject, pythonJson } from '@nodepool-ts/core/model';
import { nowSeconds } from '@nodepool-ts/core/util';
import { isNoNode, isNodeExists, paths, type RawEvent, type SessionState, type ZooKeeper } from '@nodepool-ts/core/zk';
import { normalizeHostKey, SSH_CONNECTION_TYPES } from '@nodepool-ts/core/ssh';
import { StaticDriverError, StaticHostValidationError, type HostIssue } from './errors.js';

export const CONNECTION_TYPES: readonly string[] = ['ssh', 'winrm', 'network_cli'];

export interface RuntimeHost extends StaticNode {
  provider: string;
  pool: string;
  /** Host-pool's operating system tag (free text, e.g. `linux`), or null */
  os: string | null;
  tags: string[];
  /** float Unix seconds */
  addedTime: number;
  addedBy: string | null;
}

/** What an operator supplies; everything but provider, name and labels has a default. */
export interface RuntimeHostInput {
  provider: string;
  /** defaults to the provider's only pool */
  pool?: string | null;
  name: string;
  /** a list, or a whitespace separated string as in nodepool.yaml */
  labels: readonly string[] | string;
  username?: string;
  timeout?: number;
  hostKey?: readonly string[] | string;
  connectionPort?: number;
  connectionType?: string;
  maxParallelJobs?: number;
  hostKeyChecking?: boolean;
  pythonPath?: string | null;
  shellType?: string | null;
  os?: string | null;
  tags?: readonly string[];
  addedBy?: string | null;
}

/** The fields of a runtime host definition, by their nodepool.yaml names (as the web API takes them). */
export type HostField = 'provider' | 'pool' | 'name' | 'labels' | 'username' | 'timeout' | 'host-key'
  | 'connection-port' | 'connection-type' | 'max-parallel-jobs' | 'os' | 'tags';

export interface HostFilter {
  provider?: string | null;
  os?: string | null;
  /** every tag must be present */
  tags?: readonly string[];
}

function staticProviders(config: Config): StaticProvider[] {
  return [...config.providers.values()].filter((p): p is StaticProvider => p.driver === 'static');
}

/** Where a host name is configured in nodepool.yaml (any static pool), or null. */
export function configuredHost(config: Config, name: string): { provider: string; pool: string } | null {
  for (const p of staticProviders(config)) {
    for (const pool of p.pools) {
      if (pool.nodes.some((n) => n.name === name)) return { provider: p.name, pool: pool.name };
    }
  }
  return null;
}

const HOST_NAME = /^[A-Za-z0-9_.:%[\]-]+$/;

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

/**
 * Check a definition against the config (every problem at once) and fill in Nodepool's
 * defaults. Name uniqueness against other runtime hosts is the store's job.
 */
export function validateRuntimeHost(config: Config, input: RuntimeHostInput): RuntimeHost {
  const issues: HostIssue[] = [];
  const problems = { push: (field: HostField, message: string): void => { issues.push({ field, message }); } };
  const name = input.name.trim();
  if (name === '' || name === '.' || name === '..' || !HOST_NAME.test(name)) {
    problems.push('name', `invalid host name ${JSON.stringify(input.name)} (a DNS name or an IP address)`);
  }
  const provider = config.providers.get(input.provider);
  let pool: StaticPool | undefined;
  if (!provider) {
    problems.push('provider', `provider ${JSON.stringify(input.provider)} is not configured`);
  } else if (provider.driver !== 'static') {
    problems.push('provider', `provider ${JSON.stringify(input.provider)} uses driver ${provider.driver}, not static`);
  } else if (input.pool) {
    pool = provider.pools.find((p) => p.name === input.pool);
    if (!pool) {
      problems.push('pool', `provider ${provider.name} has no pool ${JSON.stringify(input.pool)} (pools: ${provider.pools.map((p) => p.name).join(', ') || 'none'})`);
    }
  } else if (provider.pools.length === 1) {
    pool = provider.pools[0];
  } else {
    problems.push('pool', `provider ${provider.name} has ${provider.pools.length} pools; name one (pools: ${provider.pools.map((p) => p.name).join(', ') || 'none'})`);
  }
  const configured = configuredHost(config, name);
  if (configured) {
    throw new StaticDriverError('EHOSTEXISTS',
      `static host ${name} is already configured in provider "${configured.provider}" pool "${configured.pool}" of ${config.file}`,
      { host: name, ...configured });
  }
  const labels = typeof input.labels === 'string' ? input.labels.split(/\s+/).filter((s) => s !== '') : [...input.labels];
  if (labels.length === 0) problems.push('labels', 'at least one label is required');
  for (const l of labels) {
    if (!config.labels.has(l)) {
      problems.push('labels', `label ${JSON.stringify(l)} is not defined in the top-level labels`);
    } else if (pool && !pool.labels.some((pl) => pl.name === l)) {
      // The launchers only route a label to pools whose configured nodes offer it.
      problems.push('labels', `label ${JSON.stringify(l)} is not offered by pool ${pool.name} (it offers: ${pool.labels.map((pl) => pl.name).join(', ') || 'nothing'}); `
        + 'a static pool offers the labels of its configured nodes');
    }
  }
  const connectionType = input.connectionType ?? 'ssh';
  if (!CONNECTION_TYPES.includes(connectionType)) {
    problems.push('connection-type', `connection-type ${JSON.stringify(connectionType)} is not one of ${CONNECTION_TYPES.join(', ')}`);
  }
  const port = input.connectionPort ?? 22;
  if (!isInt(port) || port < 1 || port > 65535) problems.push('connection-port', `connection-port ${String(port)} is not a port number`);
  const timeout = input.timeout ?? 5;
  if (!isInt(timeout) || timeout < 1) problems.push('timeout', `timeout ${String(timeout)} must be a positive number of seconds`);
  const maxParallelJobs = input.maxParallelJobs ?? 1;
  if (!isInt(maxParallelJobs) || maxParallelJobs < 1) problems.push('max-parallel-jobs', `max-parallel-jobs ${String(maxParallelJobs)} must be at least 1`);
  const rawKeys = input.hostKey === undefined ? [] : typeof input.hostKey === 'string' ? [input.hostKey] : [...input.hostKey];
  const hostKey = rawKeys.map(normalizeHostKey).filter((k) => k !== '');
  for (const k of hostKey) {
    if (!/^\S+ [A-Za-z0-9+/]+={0,3}$/.test(k)) problems.push('host-key', `host-key ${JSON.stringify(k.slice(0, 40))} is not "<type> <base64>"`);
  }
  if (hostKey.length > 0 && !SSH_CONNECTION_TYPES.has(connectionType)) {
    problems.push('host-key', `host-key is only checked for ssh and network_cli hosts, not ${connectionType}`);
  }
  const username = input.username ?? 'zuul';
  if (username === '' || /\s/.test(username)) problems.push('username', `invalid username ${JSON.stringify(username)}`);
  const tags = [...(input.tags ?? [])].map((t) => t.trim()).filter((t) => t !== '');
  if (issues.length > 0 || !pool) throw new StaticHostValidationError(name, issues);
  return {
    name,
    provider: input.provider,
    pool: pool.name,
    labels,
    username,
    timeout,
    hostKey,
    connectionPort: port,
    connectionType,
    maxParallelJobs,
    hostKeyChecking: input.hostKeyChecking ?? true,
    pythonPath: input.pythonPath ?? null,
    shellType: input.shellType ?? null,
    os: input.os ?? null,
    tags,
    addedTime: nowSeconds(),
    addedBy: input.addedBy ?? null,
  };
}

// Stored with the config file's key names, so an operator reading the znode sees familiar keys.
function toData(h: RuntimeHost): Buffer {
  return Buffer.from(pythonJson({
    name: h.name,
    pool: h.pool,
    labels: h.labels,
    username: h.username,
    timeout: h.timeout,
    'host-key': h.hostKey,
    'connection-port': h.connectionPort,
    'connection-type': h.connectionType,
    'max-parallel-jobs': h.maxParallelJobs,
    'host-key-checking': h.hostKeyChecking,
    'python-path': h.pythonPath,
    'shell-type': h.shellType,
    os: h.os,
    tags: h.tags,
    added_time: h.addedTime,
    added_by: h.addedBy,
  }), 'utf8');
}

function strList(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : [];
}

/** Tolerant read: missing keys get their defaults; null if it is not an object at all. */
export function runtimeHostFromData(provider: string, name: string, data: Buffer | null): RuntimeHost | null {
  const d = parseJsonObject(data);
  if (d === null) return null;
  const num = (k: string, dflt: number): number => (isInt(d[k]) ? d[k] : dflt);
  const str = (k: string): string | null => (typeof d[k] === 'string' ? d[k] : null);
  return {
    name,
    provider,
    pool: str('pool') ?? '',
    labels: strList(d.labels),
    username: str('username') ?? 'zuul',
    timeout: num('timeout', 5),
    hostKey: strList(d['host-key']),
    connectionPort: num('connection-port', 22),
    connectionType: str('connection-type') ?? 'ssh',
    maxParallelJobs: num('max-parallel-jobs', 1),
    hostKeyChecking: d['host-key-checking'] !== false,
    pythonPath: str('python-path'),
    shellType: str('shell-type'),
    os: str('os'),
    tags: strList(d.tags),
    addedTime: typeof d.added_time === 'number' ? d.added_time : 0,
    addedBy: str('added_by'),
  };
}

export function filterHosts<T extends { provider: string; os: string | null; tags: readonly string[] }>(
  hosts: readonly T[], filter: HostFilter): T[] {
  return hosts.filter((h) => (!filter.provider || h.provider === filter.provider)
    && (!filter.os || (h.os ?? '').toLowerCase() === filter.os.toLowerCase())
    && (filter.tags ?? []).every((t) => h.tags.includes(t)));
}

/** The runtime hosts in ZooKeeper. Stateless apart from the client; share one per process. */
export class StaticHostStore {
  constructor(private readonly zk: ZooKeeper) {}

  async get(provider: string, name: string): Promise<RuntimeHost | null> {
    return runtimeHostFromData(provider, name, await this.zk.getData(paths.staticHost(provider, name)));
  }

  /** Every runtime host (of one provider), sorted by provider then name. */
  async list(provider?: string | null): Promise<RuntimeHost[]> {
    const providers = provider ? [provider] : (await this.zk.getChildren(paths.staticHostsRoot)).sort();
    const out: RuntimeHost[] = [];
    for (const p of providers) {
      const names = (await this.zk.getChildren(paths.staticHostsOf(p))).sort();
      const hosts = await Promise.all(names.map((n) => this.get(p, n)));
      for (const h of hosts) if (h !== null) out.push(h);
    }
    return out;
  }

  /** Validate and persist; EHOSTEXISTS when the name is configured or already added anywhere. */
  async add(config: Config, input: RuntimeHostInput): Promise<RuntimeHost> {
    const host = validateRuntimeHost(config, input);
    const existing = (await this.list()).find((h) => h.name === host.name);
    if (existing) {
      throw new StaticDriverError('EHOSTEXISTS',
        `static host ${host.name} was already added to provider "${existing.provider}" pool "${existing.pool}"`,
        { host: host.name, provider: existing.provider, pool: existing.pool });
    }
    try {
      await this.zk.create(paths.staticHost(host.provider, host.name), toData(host), 'persistent', true);
    } catch (err) {
      if (!isNodeExists(err)) throw err;
      throw new StaticDriverError('EHOSTEXISTS', `static host ${host.name} was already added to provider "${host.provider}"`,
        { host: host.name, provider: host.provider });
    }
    return host;
  }

  /**
   * Remove a runtime host (of `provider`, or wherever it is). Its READY nodes are deregistered by
   * the launchers; nodes in use finish their job first.
   */
  async remove(name: string, provider?: string | null): Promise<RuntimeHost> {
    const candidates = (await this.list(provider ?? null)).filter((h) => h.name === name);
    const host = candidates[0];
    if (host === undefined) {
      throw new StaticDriverError('ENOHOST',
        `no runtime static host ${name}${provider ? ` in provider ${provider}` : ''} (hosts from nodepool.yaml are removed by editing it)`,
        { host: name, provider: provider ?? null });
    }
    try {
      await this.zk.delete(paths.staticHost(host.provider, host.name));
    } catch (err) {
      if (!isNoNode(err)) throw err;
    }
    return host;
  }

  /**
   * Call `onChange` whenever runtime hosts of `provider` are added or removed (and after a new
   * ZooKeeper session, when changes may have been missed). Returns the unsubscribe function.
   */
  watch(provider: string, onChange: () => void): () => void {
    const path = paths.staticHostsOf(provider);
    let stopped = false;
    let armedGen = -1;
    const watcher = (_ev: RawEvent): void => {
      if (stopped) return;
      armedGen = -1;
      onChange();
      void arm();
    };
    const arm = async (): Promise<void> => {
      if (stopped) return;
      const gen = this.zk.sessionGeneration;
      armedGen = gen;
      try {
        await this.zk.mkdirp(path);
        await this.zk.listChildren(path, watcher);
      } catch {
        if (armedGen === gen) armedGen = -1; // re-armed on the next connect
      }
    };
    const onState = (s: SessionState): void => {
      if (stopped || s !== 'connected') return;
      // Same session: the client re-registers the watch itself. New session: it is gone.
      if (armedGen !== this.zk.sessionGeneration) {
        onChange();
        void arm();
      }
    };
    this.zk.on('state', onState);
    void arm();
    return () => {
      stopped = true;
      this.zk.off('state', onState);
    };
  }
}
