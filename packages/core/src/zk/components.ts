// Nodepool 6.1+'s component registry: `/nodepool/components/<kind>/<hostname><seq>`, one
// ephemeral sequential znode per launcher process (`launcher`), per provider pool (`pool`) and
// per builder (`builder`), its content `json.dumps(content, sort_keys=True)`. Later Nodepool
// launchers count the registered pools when they decide that every launcher declined a request,
// and read their labels, priority and paused state; later `nodepool label-list` and Zuul's
// label list read only these. nodepool-ts registers here as well as under `/nodepool/launchers`
// (3.x), and reads both.
import { readFileSync } from 'node:fs';
import { pythonJson } from '../model/pyjson.js';
import { parseJsonObject, type LauncherInfo } from '../model/index.js';
import { mapLimit, READ_CONCURRENCY } from './concurrency.js';
import { isNoNode } from './errors.js';
import { paths } from './paths.js';
import type { RawEvent, ZkSession } from './session.js';

export type ComponentKind = 'launcher' | 'pool' | 'builder';

/** Nodepool's component states */
export type ComponentState = 'initializing' | 'running' | 'paused' | 'stopped';

/** The model API version Nodepool components announce (Nodepool's MODEL_API is 0 to this day). */
export const COMPONENT_MODEL_API = 0;

let versionCache: string | null = null;

/** This release's version, as components announce it (Nodepool writes its own, e.g. `11.0.1`). */
export function componentVersion(): string {
  if (versionCache === null) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
      versionCache = `nodepool-ts ${typeof pkg.version === 'string' ? pkg.version : 'unknown'}`;
    } catch {
      versionCache = 'nodepool-ts';
    }
  }
  return versionCache;
}

/** A pool component's own fields (besides hostname, kind, state, version, model_api). */
export type PoolComponentFields = {
  /** the pool worker's launcher id, as in `declined_by` */
  id: string;
  /** the pool's name */
  name: string;
  provider_name: string;
  /** the labels this pool can launch */
  supported_labels: string[];
  priority: number;
  paused: boolean;
};

/** `json.dumps(content, sort_keys=True)` of a component (Python sorts keys by code point). */
export function componentToData(content: Readonly<Record<string, unknown>>): Buffer {
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(content).sort()) sorted[k] = content[k];
  return Buffer.from(pythonJson(sorted), 'latin1');
}

/**
 * A registered pool as the launcher's request logic sees it, or null when the content is not a
 * pool's (Nodepool skips pools without a name; a pool needs an id to be declined by).
 */
export function poolComponentToLauncher(data: Buffer): LauncherInfo | null {
  const d = parseJsonObject(data);
  if (d === null) return null;
  const id = d['id'];
  if (typeof id !== 'string' || id === '') return null;
  const labels = Array.isArray(d['supported_labels']) ? d['supported_labels'].filter((l): l is string => typeof l === 'string') : [];
  const priority = d['priority'];
  const name = d['name'];
  return {
    id,
    ...(typeof name === 'string' && name !== '' ? { pool_name: name } : {}),
    provider_name: typeof d['provider_name'] === 'string' ? d['provider_name'] : 'unknown',
    supported_labels: [...new Set(labels)].sort(),
    priority: typeof priority === 'number' && Number.isFinite(priority) ? priority : 100,
    paused: d['paused'] === true,
  };
}

/** Every registered pool (`/nodepool/components/pool`); `watcher` also fires when one's data changes. */
export async function getRegisteredPools(zk: ZkSession, watcher?: (ev: RawEvent) => void): Promise<LauncherInfo[]> {
  const root = paths.componentsOf('pool');
  const names = (await zk.listChildren(root, watcher)) ?? [];
  const all = await mapLimit(names, READ_CONCURRENCY, async (name) => {
    const got = await zk.getDataStat(paths.child(root, name), watcher);
    return got === null ? null : poolComponentToLauncher(got.data);
  });
  return all.filter((l): l is LauncherInfo => l !== null);
}

/**
 * One component's registration. `update()` writes the content when it changed and re-creates the
 * znode when it is gone (a new session dropped it); calls are serialised, so a burst of them makes
 * one znode. `remove()` deletes it (the daemon stops).
 */
export class ComponentRegistration {
  private path: string | null = null;
  private generation = -1;
  private written: Buffer | null = null;
  private chain: Promise<void> = Promise.resolve();
  private removed = false;

  constructor(
    private readonly zk: ZkSession,
    readonly kind: ComponentKind,
    readonly hostname: string,
    /** the kind's own fields (pool: PoolComponentFields); read at every update */
    private readonly fields: () => Record<string, unknown> = () => ({}),
  ) {}

  /** the registered znode's path (null before the first registration) */
  get znode(): string | null {
    return this.path;
  }

  /** The content Nodepool's component of this kind would write. */
  content(state: ComponentState = 'running'): Record<string, unknown> {
    return {
      hostname: this.hostname, kind: this.kind, model_api: COMPONENT_MODEL_API, state, version: componentVersion(),
      ...this.fields(),
    };
  }

  update(): Promise<void> {
    const run = this.chain.then(() => this.apply());
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async apply(): Promise<void> {
    if (this.removed) return;
    const data = componentToData(this.content());
    const sessionChanged = this.generation !== this.zk.sessionGeneration;
    if (this.path !== null && !sessionChanged && this.written?.equals(data)) return;
    if (this.path !== null) {
      try {
        // (after a new session the znode may be gone: NoNode makes a new one)
        await this.zk.setData(this.path, data);
        this.written = data;
        this.generation = this.zk.sessionGeneration;
        return;
      } catch (err) {
        if (!isNoNode(err)) throw err;
      }
    }
    const generation = this.zk.sessionGeneration;
    this.path = await this.zk.create(paths.componentPrefix(this.kind, this.hostname), data, 'ephemeral_sequential');
    this.written = data;
    this.generation = generation;
  }

  async remove(): Promise<void> {
    this.removed = true;
    await this.chain;
    if (this.path !== null) await this.zk.deleteIfExists(this.path);
    this.path = null;
  }
}
