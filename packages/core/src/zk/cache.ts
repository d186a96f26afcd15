// Watch-fed caches of `/nodepool/nodes` and `/nodepool/requests` (what Nodepool gets from kazoo's
// TreeCache): one children watch on the root, one data watch per child, re-armed on every read.
// No polling. Values are frozen snapshots: copy (cloneNode) before modifying.
//
// Ordering: replies and watch notifications arrive in server order, but they reach us through
// different numbers of promise hops, so a reply read BEFORE a deletion could be handled AFTER it.
// Every read therefore carries an issue number, a removal records the issue number after which
// reads are trustworthy again, and data is only replaced by data with a newer mzxid.
import { EventEmitter } from 'node:events';
import { nodeFromData, requestFromData, type Node, type NodeRequest } from '../model/index.js';
import { getLogger } from '../log/index.js';
import { Limiter, READ_CONCURRENCY } from './concurrency.js';
import { isRetryable } from './errors.js';
import { paths } from './paths.js';
import type { RawEvent, SessionState, ZkSession } from './session.js';
import { watchEventType } from './session.js';

interface Entry<T> {
  value: Readonly<T> | null;
  mzxid: Buffer;
}

/** Events: 'change' (id, value | null) per visible change; 'synced' after each full (re)load. */
export interface ZnodeCacheEvents<T> {
  change: [id: string, value: Readonly<T> | null];
  synced: [];
}

export class ZnodeCache<T extends object> extends EventEmitter {
  private readonly entries = new Map<string, Entry<T>>();
  private snapshot: Readonly<T>[] | null = null;
  private readonly limiter = new Limiter(READ_CONCURRENCY);
  private issue = 0;
  /** Reads of an id issued before this number are stale (the id was removed after them). */
  private readonly tombstones = new Map<string, number>();
  private readonly inflight = new Map<string, number>();
  private running = false;
  private stopped = true;
  private syncedGen = -1;
  private refreshing: Promise<void> | null = null;
  private refreshAgain = false;
  private refreshFull = false;
  /** Reads that failed on a dropped connection (their watch is not set): redo on reconnect. */
  private readonly retryIds = new Set<string>();
  private retryChildren = false;
  private readonly log = getLogger('nodepool.zk.ZnodeCache');

  constructor(
    protected readonly zk: ZkSession,
    readonly root: string,
    private readonly parse: (id: string, data: Buffer) => T | null,
    private readonly freeze: (value: T) => Readonly<T>,
  ) {
    super();
  }

  /** Load everything and start watching; resolves once the initial load is complete. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.stopped = false;
    this.zk.on('state', this.onState);
    await this.zk.mkdirp(this.root);
    await this.refresh(true);
  }

  stop(): void {
    this.stopped = true;
    this.running = false;
    this.zk.off('state', this.onState);
  }

  get(id: string): Readonly<T> | undefined {
    return this.entries.get(id)?.value ?? undefined;
  }

  /**
   * The cached value if it is known to be current: no change notified for it is still being
   * read, and no read of it waits for a reconnect. ZooKeeper delivers a watch notification
   * before the reply to any request the server handled after that change, so right after such a
   * reply (a lock taken, say) a value that passes this check is what a fresh read would return.
   */
  current(id: string): Readonly<T> | undefined {
    if (this.inflight.has(id) || this.retryIds.has(id) || this.retryChildren) return undefined;
    if (this.syncedGen !== this.zk.sessionGeneration || this.zk.state !== 'connected') return undefined;
    return this.entries.get(id)?.value ?? undefined;
  }

  has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  /** All cached objects (frozen), in no particular order. A new array on each call. */
  all(): Readonly<T>[] {
    if (this.snapshot === null) {
      const out: Readonly<T>[] = [];
      for (const e of this.entries.values()) if (e.value !== null) out.push(e.value);
      this.snapshot = out;
    }
    return this.snapshot.slice();
  }

  /** Ids of every child znode, including empty or malformed ones. */
  ids(): string[] {
    return [...this.entries.keys()];
  }

  get size(): number {
    return this.all().length;
  }

  /** Re-read every child (re-arming every watch); resolves when done. */
  sync(): Promise<void> {
    return this.refresh(true);
  }

  // ------------------------------------------------------------------ watch handling

  private readonly onState = (s: SessionState): void => {
    if (this.stopped || s !== 'connected') return;
    // Same session: the library re-registers our watches. New session: they are gone, reload.
    if (this.zk.sessionGeneration !== this.syncedGen) {
      this.retryIds.clear();
      this.retryChildren = false;
      void this.refresh(true);
      return;
    }
    if (this.retryChildren) {
      this.retryChildren = false;
      void this.refresh(false);
    }
    const ids = [...this.retryIds];
    this.retryIds.clear();
    for (const id of ids) void this.fetch(id);
  };

  private readonly childWatcher = (_ev: RawEvent): void => {
    if (this.stopped) return;
    void this.refresh(false);
  };

  private readonly rootWatcher = (_ev: RawEvent): void => {
    if (this.stopped) return;
    void this.refresh(false);
  };

  private readonly dataWatcher = (ev: RawEvent): void => {
    if (this.stopped) return;
    const id = paths.basename(ev.getPath());
    if (watchEventType(ev) === 'deleted') this.remove(id, this.issue + 1);
    else void this.fetch(id);
  };

  /** Coalesced children refresh: at most one in flight, one more queued. Never rejects. */
  private refresh(full: boolean): Promise<void> {
    if (full) this.refreshFull = true;
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      try {
        do {
          this.refreshAgain = false;
          const wasFull = this.refreshFull;
          this.refreshFull = false;
          await this.refreshOnce(wasFull);
        } while (this.refreshAgain && !this.stopped);
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  private async refreshOnce(full: boolean): Promise<void> {
    if (this.stopped) return;
    const gen = this.zk.sessionGeneration;
    const issued = ++this.issue;
    let children: string[] | null;
    try {
      children = await this.zk.listChildren(this.root, this.childWatcher);
      if (children === null) {
        // Root deleted: everything is gone; wait for it to come back.
        await this.zk.stat(this.root, this.rootWatcher);
        children = [];
      }
    } catch (err) {
      // Retried when the session is usable again (same session: children; new one: everything).
      if (isRetryable(err)) this.retryChildren = true;
      else if (!this.stopped) this.log.warn({ err, root: this.root }, `cache refresh of ${this.root} failed`);
      return;
    }
    if (this.stopped) return;
    const present = new Set(children);
    for (const id of [...this.entries.keys()]) if (!present.has(id)) this.remove(id, issued);
    const todo = full ? children : children.filter((id) => !this.entries.has(id) && !this.inflight.has(id));
    await Promise.all(todo.map((id) => this.fetch(id)));
    if (full && gen === this.zk.sessionGeneration) {
      this.syncedGen = gen;
      this.emit('synced');
    }
  }

  private fetch(id: string): Promise<void> {
    const issued = ++this.issue;
    this.inflight.set(id, (this.inflight.get(id) ?? 0) + 1);
    return this.limiter.run(async () => {
      try {
        const r = await this.zk.getDataStat(paths.child(this.root, id), this.dataWatcher);
        if (this.stopped) return;
        const tomb = this.tombstones.get(id);
        if (tomb !== undefined && issued < tomb) return;
        if (r === null) {
          this.remove(id, issued + 1);
          return;
        }
        this.apply(id, r.data, r.stat.mzxid);
      } catch (err) {
        if (isRetryable(err)) this.retryIds.add(id);
        else if (!this.stopped) this.log.warn({ err, id }, `cache read of ${this.root}/${id} failed`);
      } finally {
        const n = (this.inflight.get(id) ?? 1) - 1;
        if (n <= 0) {
          this.inflight.delete(id);
          this.tombstones.delete(id);
        } else {
          this.inflight.set(id, n);
        }
      }
    });
  }

  private apply(id: string, data: Buffer, mzxid: Buffer): void {
    const cur = this.entries.get(id);
    if (cur && Buffer.compare(mzxid, cur.mzxid) <= 0) return;
    const parsed = data.length === 0 ? null : this.parse(id, data);
    const value = parsed === null ? null : this.freeze(parsed);
    this.entries.set(id, { value, mzxid });
    this.tombstones.delete(id);
    if (value === null && (cur === undefined || cur.value === null)) return;
    this.snapshot = null;
    this.emit('change', id, value);
  }

  private remove(id: string, staleBefore: number): void {
    if (this.inflight.has(id)) this.tombstones.set(id, Math.max(staleBefore, this.tombstones.get(id) ?? 0));
    const cur = this.entries.get(id);
    if (!cur) return;
    this.entries.delete(id);
    if (cur.value === null) return;
    this.snapshot = null;
    this.emit('change', id, null);
  }
}

function freezeNode(n: Node): Readonly<Node> {
  Object.freeze(n.type);
  Object.freeze(n.host_keys);
  Object.freeze(n.extra);
  if (n.resources) Object.freeze(n.resources);
  if (n.attributes) Object.freeze(n.attributes);
  if (typeof n.connection_port === 'object') Object.freeze(n.connection_port);
  return Object.freeze(n);
}

function freezeRequest(r: NodeRequest): Readonly<NodeRequest> {
  Object.freeze(r.declined_by);
  Object.freeze(r.node_types);
  Object.freeze(r.nodes);
  Object.freeze(r.extra);
  return Object.freeze(r);
}

/** `/nodepool/nodes`: emits 'change' (id, node | null). */
export class NodeCache extends ZnodeCache<Node> {
  constructor(zk: ZkSession) {
    super(zk, paths.nodesRoot, (id, data) => nodeFromData(id, data), freezeNode);
  }

  /** Nodepool's getReadyNodesOfTypes: READY, unallocated nodes per requested label (multi-label nodes repeat). */
  readyNodesOfTypes(labels: readonly string[]): Map<string, Readonly<Node>[]> {
    const out = new Map<string, Readonly<Node>[]>();
    for (const n of this.all()) {
      if (n.state !== 'ready' || n.allocated_to) continue;
      for (const label of labels) {
        if (!n.type.includes(label)) continue;
        const list = out.get(label);
        if (list) list.push(n);
        else out.set(label, [n]);
      }
    }
    return out;
  }
}

/** `/nodepool/requests`: emits 'change' (id, request | null). */
export class RequestCache extends ZnodeCache<NodeRequest> {
  constructor(zk: ZkSession) {
    super(zk, paths.requestsRoot, (id, data) => requestFromData(id, data), freezeRequest);
  }
}
