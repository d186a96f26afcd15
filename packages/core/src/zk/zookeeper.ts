// Nodepool's ZooKeeper API (Nodepool's zk.py, §1): requests, nodes, launchers, images and their
// locks. Every path comes from `paths`, every payload from the model's (de)serialisers.
import {
  buildFromData, buildToData, launcherFromData, launcherToData, nodeFromData, nodeToData,
  requestFromData, requestFromDict, requestToData, nodeFromDict, parseJsonObject, uploadFromData, uploadToData,
  type BuildState, type ImageBuild, type ImageUpload, type LauncherInfo, type Node, type NodeRequest,
  type UploadState,
} from '../model/index.js';
import { getRegisteredPools } from './components.js';
import { mapLimit, READ_CONCURRENCY } from './concurrency.js';
import { ImageDataError, LockError, ZkError, isNoNode, isNodeExists, isRetryable } from './errors.js';
import { CONTENDER_RE, Lock, sortContenders, type AcquireOptions } from './lock.js';
import { LOCK_CHILD, paths } from './paths.js';
import { ZkSession, statTimeMs, type MultiOp, type RawEvent } from './session.js';

export interface LockOptions extends AcquireOptions {
  /**
   * After locking, reload the object's fields from ZooKeeper in place (Nodepool's lockNode does
   * this). Off by default: callers usually lock a cached (frozen) snapshot and read a fresh copy.
   */
  refresh?: boolean;
}

export interface LockStat {
  mtimeMs: number;
  ctimeMs: number;
}

/** The znodes an image data export holds: `<image>/pause`, a build, an upload (groups: image, build, provider, upload). */
const IMAGE_DATA_PATH = new RegExp(`^${paths.imagesRoot}/([^/]+)/(?:pause|builds/([^/]+)(?:/providers/([^/]+)/images/([^/]+))?)$`);
const EMPTY_DATA = Buffer.alloc(0);

function byId<T extends { id: string | null }>(a: T, b: T): number {
  const x = a.id ?? '';
  const y = b.id ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
}

function nowSeconds(): number {
  return Date.now() / 1000;
}

export class ZooKeeper extends ZkSession {
  /** The lock each object holds (Nodepool keeps it as `node.lock`; our objects stay plain data). */
  private readonly objectLocks = new WeakMap<object, Lock>();

  // ================================================================== node requests

  /** Create `/nodepool/requests/<priority>-<seq>` (ephemeral, sequential); sets and returns req.id. */
  async submitNodeRequest(req: NodeRequest, priority: string): Promise<string> {
    const data = requestToData({ ...req, id: null });
    const created = await this.create(paths.requestPrefix(priority), data, 'ephemeral_sequential', true);
    req.id = paths.basename(created);
    return req.id;
  }

  /** Rewrite an existing request (all keys, unknown ones preserved). */
  async storeNodeRequest(req: NodeRequest, onApplied?: () => void): Promise<void> {
    if (req.id === null) throw new ZkError('ENONODE', 'Attempt to update a request that has no id', {});
    try {
      await this.setData(paths.request(req.id), requestToData(req), -1, onApplied);
    } catch (err) {
      if (isNoNode(err)) throw new ZkError('ENONODE', `Attempt to update non-existing request ${req.id}`, { id: req.id });
      throw err;
    }
  }

  async getNodeRequest(id: string): Promise<NodeRequest | null> {
    return requestFromData(id, await this.getData(paths.request(id)));
  }

  /**
   * A request read with a watch for its next change or deletion: `gone` when the znode does not
   * exist (no watch is left then: a request id is never used again), `request` null when its
   * data is not a request.
   */
  async watchNodeRequest(id: string, watcher: (ev: RawEvent) => void): Promise<{ gone: boolean; request: NodeRequest | null }> {
    const got = await this.getDataStat(paths.request(id), watcher);
    if (got === null) return { gone: true, request: null };
    return { gone: false, request: requestFromData(id, got.data) };
  }

  /** Request ids, sorted lexically (= by priority, then sequence). */
  async getNodeRequestIds(): Promise<string[]> {
    return (await this.getChildren(paths.requestsRoot)).sort();
  }

  /** All readable requests, sorted by id; empty or malformed znodes are skipped. */
  async getNodeRequests(): Promise<NodeRequest[]> {
    const ids = await this.getNodeRequestIds();
    const reqs = await mapLimit(ids, READ_CONCURRENCY, (id) => this.getNodeRequest(id));
    return reqs.filter((r): r is NodeRequest => r !== null).sort(byId);
  }

  async deleteNodeRequest(id: string): Promise<void> {
    await this.deleteIfExists(paths.request(id));
  }

  /** Lock `/nodepool/requests-lock/<id>` (non-blocking by default). The lock stays with `req`. */
  async lockNodeRequest(req: NodeRequest, opts: LockOptions = {}): Promise<boolean> {
    if (req.id === null) throw new LockError('Cannot lock a request that has no id');
    const lock = new Lock(this, paths.requestLock(req.id));
    // A request's lock directory exists only once someone has locked it: usually not yet.
    if (!(await lock.acquire({ blocking: opts.blocking ?? false, timeoutMs: opts.timeoutMs, createParent: opts.createParent ?? true }))) return false;
    if (opts.refresh) {
      const d = parseJsonObject(await this.getData(paths.request(req.id)));
      const fresh = d === null ? null : requestFromDict(req.id, d);
      if (fresh === null) {
        // The request vanished (or is unreadable) while we locked it: nothing to hold.
        await lock.release();
        return false;
      }
      Object.assign(req, fresh);
    }
    this.objectLocks.set(req, lock);
    return true;
  }

  /** Release the request's lock; `missingOk`: a request holding none (released by a multi) is no error. */
  async unlockNodeRequest(req: NodeRequest, opts: { missingOk?: boolean } = {}): Promise<void> {
    const lock = this.objectLocks.get(req);
    if (!lock && opts.missingOk === true) return;
    if (!lock) throw new LockError(`Request ${req.id ?? '(no id)'} does not hold a lock`, req.id === null ? null : paths.requestLock(req.id));
    this.objectLocks.delete(req);
    await lock.release();
  }

  /**
   * Write `nodes` and `requests` and release the locks `release` hold, all in one multi: either
   * everything happened or nothing did. True when it was applied (the locks are released); false
   * when nothing was written (a lock not held in this session, a znode gone, another failure: the
   * locks are still held). A reply lost with the connection is resolved by looking for one of the
   * released contenders once connected again (the multi deletes them); a lost session throws.
   * `onApplied` runs once it is known to be applied: in the reply's own turn when it arrives, so
   * an observer hears of it before any change another client makes next (see multi).
   */
  async storeAndRelease(nodes: readonly Node[], requests: readonly NodeRequest[], release: ReadonlyArray<Node | NodeRequest>,
    onApplied?: () => void): Promise<boolean> {
    const locks: Array<{ obj: object; lock: Lock; path: string }> = [];
    for (const obj of release) {
      const lock = this.objectLocks.get(obj);
      const path = lock?.heldContenderPath ?? null;
      if (lock === undefined || path === null) return false;
      locks.push({ obj, lock, path });
    }
    const ops: MultiOp[] = [];
    for (const n of nodes) {
      if (n.id === null) return false;
      ops.push({ op: 'set', path: paths.node(n.id), data: nodeToData(n) });
    }
    for (const r of requests) {
      if (r.id === null) return false;
      ops.push({ op: 'set', path: paths.request(r.id), data: requestToData(r) });
    }
    for (const l of locks) ops.push({ op: 'delete', path: l.path });
    if (ops.length === 0) return true;
    const gen = this.sessionGeneration;
    let applied: boolean;
    try {
      await this.multi(ops, onApplied);
      applied = true;
    } catch (err) {
      if (!isRetryable(err)) return false;
      const probe = locks[0]?.path;
      if (probe === undefined || !(await this.waitConnected(this.sessionTimeout)) || this.sessionGeneration !== gen) throw err;
      applied = !(await this.exists(probe));
      if (applied) onApplied?.();
    }
    if (!applied) return false;
    for (const l of locks) {
      this.objectLocks.delete(l.obj);
      l.lock.forgetDeleted();
    }
    return true;
  }

  /**
   * Delete a request we hold the lock of, with its lock directory: one multi when nobody else
   * contends for the lock (else the request alone, then our unlock). The lock is released.
   */
  async deleteLockedRequest(req: NodeRequest): Promise<void> {
    if (req.id === null) return;
    const lock = this.objectLocks.get(req);
    const contender = lock?.heldContenderPath ?? null;
    if (lock !== undefined && contender !== null) {
      try {
        await this.multi([
          { op: 'delete', path: paths.request(req.id) },
          { op: 'delete', path: contender },
          { op: 'delete', path: paths.requestLock(req.id) },
        ]);
        this.objectLocks.delete(req);
        lock.forgetDeleted();
        return;
      } catch {
        // another contender, the request already gone, a lost connection: one at a time
      }
    }
    await this.deleteNodeRequest(req.id);
    if (lock !== undefined) await this.unlockNodeRequest(req).catch(() => undefined);
  }

  /**
   * Let `to` (typically a fresh copy read after locking) hold the lock `from` holds. Both objects
   * then refer to the same lock: unlocking either releases it, unlocking the other is a no-op.
   */
  transferRequestLock(from: NodeRequest, to: NodeRequest): void {
    this.transferLock(from, to, `Request ${from.id ?? '(no id)'}`);
  }

  /** The Lock a request object holds, if any. */
  getRequestLock(req: NodeRequest): Lock | undefined {
    return this.objectLocks.get(req);
  }

  async getNodeRequestLockIds(): Promise<string[]> {
    return this.getChildren(paths.requestLockRoot);
  }

  /** Times of the request-lock directory (lost-lock cleanup looks at mtime), null if absent. */
  async getNodeRequestLockStat(id: string): Promise<LockStat | null> {
    const st = await this.stat(paths.requestLock(id));
    return st === null ? null : { mtimeMs: statTimeMs(st.mtime), ctimeMs: statTimeMs(st.ctime) };
  }

  async deleteNodeRequestLock(id: string): Promise<void> {
    await this.deleteRecursive(paths.requestLock(id));
  }

  // ================================================================== nodes

  /**
   * A new node (id null) is created as `/nodepool/nodes/<seq>` and gets its id (and created_time
   * = state_time when unset); an existing one is overwritten (ENONODE if it was deleted).
   */
  async storeNode(node: Node): Promise<void> {
    if (node.id === null) {
      if (node.created_time === null) node.created_time = node.state_time || nowSeconds();
      const created = await this.create(paths.nodePrefix, nodeToData(node), 'persistent_sequential', true);
      node.id = paths.basename(created);
      return;
    }
    await this.setData(paths.node(node.id), nodeToData(node));
  }

  /** The node, or null if absent, empty (a lock on a vanished node recreates it empty) or malformed. */
  async getNode(id: string): Promise<Node | null> {
    return nodeFromData(id, await this.getData(paths.node(id)));
  }

  /** Raw node znode data: null if absent, an empty Buffer for an empty znode. */
  async getNodeData(id: string): Promise<Buffer | null> {
    return this.getData(paths.node(id));
  }

  async getNodeIds(): Promise<string[]> {
    return (await this.getChildren(paths.nodesRoot)).sort();
  }

  /** Every readable node (uncached), sorted by id; empty/malformed znodes skipped with a warning. */
  async getNodes(): Promise<Node[]> {
    const ids = await this.getNodeIds();
    const nodes = await mapLimit(ids, READ_CONCURRENCY, async (id) => {
      const data = await this.getData(paths.node(id));
      if (data === null) return null;
      const node = nodeFromData(id, data);
      if (node === null) this.log.warn({ node: id }, `Node ${id} has empty or malformed data; skipped`);
      return node;
    });
    return nodes.filter((n): n is Node => n !== null);
  }

  /** Lock `/nodepool/nodes/<id>/lock` (non-blocking by default). The lock stays with `node`. */
  async lockNode(node: Node, opts: LockOptions = {}): Promise<boolean> {
    if (node.id === null) throw new LockError('Cannot lock a node that has no id');
    const lock = new Lock(this, paths.nodeLock(node.id));
    // An `init` node was just created by its launcher: nobody has locked it yet.
    const createParent = opts.createParent ?? node.state === 'init';
    if (!(await lock.acquire({ blocking: opts.blocking ?? false, timeoutMs: opts.timeoutMs, createParent }))) return false;
    if (opts.refresh) {
      const d = parseJsonObject(await this.getData(paths.node(node.id)));
      const fresh = d === null ? null : nodeFromDict(node.id, d);
      if (fresh === null) {
        await lock.release();
        return false;
      }
      Object.assign(node, fresh);
    }
    this.objectLocks.set(node, lock);
    return true;
  }

  async unlockNode(node: Node): Promise<void> {
    const lock = this.objectLocks.get(node);
    if (!lock) throw new LockError(`Node ${node.id ?? '(no id)'} does not hold a lock`, node.id === null ? null : paths.nodeLock(node.id));
    this.objectLocks.delete(node);
    await lock.release();
  }

  /** See transferRequestLock. */
  transferNodeLock(from: Node, to: Node): void {
    this.transferLock(from, to, `Node ${from.id ?? '(no id)'}`);
  }

  getNodeLock(node: Node): Lock | undefined {
    return this.objectLocks.get(node);
  }

  /** Whether this object holds a lock that is still valid (false after a session loss). */
  holdsLock(obj: Node | NodeRequest): boolean {
    return this.objectLocks.get(obj)?.isAcquired ?? false;
  }

  /** The Python CLI's test: a non-blocking acquire that succeeds means "unlocked" (then released). */
  async isNodeLocked(id: string): Promise<boolean> {
    const lock = new Lock(this, paths.nodeLock(id));
    if (await lock.acquire({ blocking: false })) {
      await lock.release();
      return false;
    }
    return true;
  }

  /**
   * Nodepool's `lockNode(node, ephemeral=False, identifier=...)`: a kazoo-compatible contender
   * that is PERSISTENT (it outlives our session and the launcher) with `identifier` as its data.
   * Blocking by default (the metastatic driver waits 30 s, as Nodepool does). Nothing is kept on
   * our side: the holder is recognised by `getNodeLockContenders` and released by
   * `forceUnlockNode`, by this or any later process.
   */
  async lockNodePersistent(id: string, identifier: string, opts: { blocking?: boolean; timeoutMs?: number } = {}): Promise<boolean> {
    const lock = new Lock(this, paths.nodeLock(id), identifier, { persistent: true });
    return lock.acquire({ blocking: opts.blocking ?? true, timeoutMs: opts.timeoutMs });
  }

  /**
   * The identifiers (contender data) of a node lock in lock order, the holder first, as kazoo's
   * `Lock.contenders()` returns them; [] when nobody holds or waits for it.
   */
  async getNodeLockContenders(id: string): Promise<string[]> {
    return new Lock(this, paths.nodeLock(id)).contenders();
  }

  /**
   * Nodepool's `forceUnlockNode`: delete the lowest contender of a node lock (its holder, for a
   * plain exclusive lock), whoever created it. With `identifier`, only when the holder's data is
   * that identifier. True when a contender was deleted.
   */
  async forceUnlockNode(id: string, identifier?: string): Promise<boolean> {
    const lockPath = paths.nodeLock(id);
    const holder = sortContenders(await this.getChildren(lockPath))[0];
    if (holder === undefined) return false;
    const path = paths.child(lockPath, holder);
    if (identifier !== undefined) {
      const data = await this.getData(path);
      if (data === null || data.toString('utf8') !== identifier) return false;
    }
    await this.deleteIfExists(path);
    return true;
  }

  /** Whether anyone holds or waits for the node lock, without contending (no znodes created). */
  async nodeLockHasContenders(id: string): Promise<boolean> {
    return (await this.getChildren(paths.nodeLock(id))).some((c) => CONTENDER_RE.test(c));
  }

  /**
   * Write state `deleted`, then remove the znode recursively (its lock dir first): a racing
   * reader that recreated the node through a lock sees `deleted`, not a live node (§2.2).
   * The caller's object is not modified.
   */
  async deleteNode(node: Node): Promise<void> {
    if (node.id === null) return;
    try {
      await this.setData(paths.node(node.id), nodeToData({ ...node, state: 'deleted', state_time: nowSeconds() }));
    } catch (err) {
      if (isNoNode(err)) return;
      throw err;
    }
    await this.deleteRecursive(paths.node(node.id));
  }

  /**
   * Delete a node whose lock `lockedRef` holds: our contender, the lock directory and the node go
   * in one multi (nobody can see a half-deleted node, and it takes one round trip instead of
   * seven). When that cannot be done (someone else waits for the lock, another child, a lost
   * session) it falls back to deleteNode's `deleted` write and recursive delete. The lock is
   * released either way.
   */
  async deleteLockedNode(node: Node, lockedRef: Node): Promise<void> {
    const lock = this.objectLocks.get(lockedRef);
    const contender = lock?.heldContenderPath ?? null;
    if (node.id !== null && lock !== undefined && contender !== null) {
      try {
        await this.multi([
          { op: 'delete', path: contender },
          { op: 'delete', path: paths.nodeLock(node.id) },
          { op: 'delete', path: paths.node(node.id) },
        ]);
        this.objectLocks.delete(lockedRef);
        lock.forgetDeleted();
        return;
      } catch {
        // ENOTEMPTY (a waiting contender), ENONODE, a lost connection: the long way below
      }
    }
    await this.deleteNode(node);
    await this.unlockNode(lockedRef).catch(() => undefined);
  }

  /** Remove a node znode recursively without writing it first (empty/garbage znodes). */
  async deleteRawNode(id: string): Promise<void> {
    await this.deleteRecursive(paths.node(id));
  }

  // ================================================================== launchers

  /** Ephemeral registration; rewritten only when it differs. Safe to call every loop. */
  async registerLauncher(info: LauncherInfo): Promise<void> {
    const path = paths.launcher(info.id);
    const data = launcherToData(info);
    const cur = await this.getData(path);
    if (cur !== null) {
      if (!cur.equals(data)) await this.setData(path, data);
      return;
    }
    try {
      await this.create(path, data, 'ephemeral', true);
    } catch (err) {
      if (!isNodeExists(err)) throw err;
      await this.setData(path, data);
    }
  }

  /** Every registered launcher; `watcher` (optional) also fires when one's data changes. */
  async getRegisteredLaunchers(watcher?: (ev: RawEvent) => void): Promise<LauncherInfo[]> {
    const ids = await this.getChildren(paths.launchersRoot);
    const all = await mapLimit(ids, READ_CONCURRENCY, async (id) => {
      const got = await this.getDataStat(paths.launcher(id), watcher);
      return got === null ? null : launcherFromData(got.data);
    });
    return all.filter((l): l is LauncherInfo => l !== null);
  }

  /**
   * Every launcher pool a request can be offered to: 3.x registrations (`/nodepool/launchers`)
   * and Nodepool 6.1+ pool components, one entry per id. Where both name a pool (nodepool-ts
   * writes both) the component's wins: it lists the pool's own labels and always its priority.
   */
  async getLauncherPools(watcher?: (ev: RawEvent) => void): Promise<LauncherInfo[]> {
    const [legacy, pools] = await Promise.all([this.getRegisteredLaunchers(watcher), getRegisteredPools(this, watcher)]);
    const byId = new Map<string, LauncherInfo>();
    for (const l of legacy) byId.set(l.id, l);
    for (const p of pools) byId.set(p.id, p);
    return [...byId.values()];
  }

  async unregisterLauncher(id: string): Promise<void> {
    await this.deleteIfExists(paths.launcher(id));
  }

  // ================================================================== images

  async getImageNames(): Promise<string[]> {
    return (await this.getChildren(paths.imagesRoot)).sort();
  }

  async getBuildIds(image: string): Promise<string[]> {
    return (await this.getChildren(paths.builds(image))).filter((c) => c !== LOCK_CHILD).sort();
  }

  async getBuild(image: string, buildId: string): Promise<ImageBuild | null> {
    return buildFromData(image, buildId, await this.getData(paths.build(image, buildId)));
  }

  /** Builds of an image (sorted by id), optionally only those in one of `states`. */
  async getBuilds(image: string, states?: readonly BuildState[]): Promise<ImageBuild[]> {
    const ids = await this.getBuildIds(image);
    const builds = await mapLimit(ids, READ_CONCURRENCY, (id) => this.getBuild(image, id));
    return builds.filter((b): b is ImageBuild => b !== null && (states === undefined || states.includes(b.state)));
  }

  /** The `count` most recent builds by state_time (newest first), optionally of one state. */
  async getMostRecentBuilds(count: number, image: string, state?: BuildState): Promise<ImageBuild[]> {
    const builds = await this.getBuilds(image, state === undefined ? undefined : [state]);
    return builds.sort((a, b) => b.state_time - a.state_time).slice(0, count);
  }

  /** Create (sequential) when no id is given, else overwrite. Returns the build id. */
  async storeBuild(image: string, build: ImageBuild, buildId?: string): Promise<string> {
    const id = buildId ?? build.id ?? undefined;
    if (id === undefined) {
      const created = await this.create(paths.buildPrefix(image), buildToData(build), 'persistent_sequential', true);
      const newId = paths.basename(created);
      build.id = newId;
      build.image = image;
      return newId;
    }
    await this.setData(paths.build(image, id), buildToData(build));
    return id;
  }

  /** Remove a build (recursively, its lock too) unless uploads still exist: then false. */
  async deleteBuild(image: string, buildId: string): Promise<boolean> {
    for (const provider of await this.getBuildProviders(image, buildId)) {
      if ((await this.getUploadIds(image, buildId, provider)).length > 0) return false;
    }
    await this.deleteRecursive(paths.build(image, buildId));
    return true;
  }

  async getBuildProviders(image: string, buildId: string): Promise<string[]> {
    return (await this.getChildren(paths.buildProviders(image, buildId))).sort();
  }

  async getUploadIds(image: string, buildId: string, provider: string): Promise<string[]> {
    return (await this.getChildren(paths.uploads(image, buildId, provider))).filter((c) => c !== LOCK_CHILD).sort();
  }

  async getImageUpload(image: string, buildId: string, provider: string, uploadId: string): Promise<ImageUpload | null> {
    return uploadFromData(image, buildId, provider, uploadId, await this.getData(paths.upload(image, buildId, provider, uploadId)));
  }

  async getImageUploads(image: string, buildId: string, provider: string, states?: readonly UploadState[]): Promise<ImageUpload[]> {
    const ids = await this.getUploadIds(image, buildId, provider);
    const uploads = await mapLimit(ids, READ_CONCURRENCY, (id) => this.getImageUpload(image, buildId, provider, id));
    return uploads.filter((u): u is ImageUpload => u !== null && (states === undefined || states.includes(u.state)));
  }

  async getMostRecentBuildImageUploads(
    count: number, image: string, buildId: string, provider: string, state?: UploadState,
  ): Promise<ImageUpload[]> {
    const uploads = await this.getImageUploads(image, buildId, provider, state === undefined ? undefined : [state]);
    return uploads.sort((a, b) => b.state_time - a.state_time).slice(0, count);
  }

  /** The newest upload (by state_time) of `image` to `provider` in `state`, over all builds. */
  async getMostRecentImageUpload(image: string, provider: string, state: UploadState = 'ready'): Promise<ImageUpload | null> {
    const buildIds = await this.getBuildIds(image);
    const perBuild = await mapLimit(buildIds, 16, (b) => this.getImageUploads(image, b, provider, [state]));
    let best: ImageUpload | null = null;
    for (const uploads of perBuild) {
      for (const u of uploads) if (best === null || best.state_time < u.state_time) best = u;
    }
    return best;
  }

  /** Create (sequential) when no id is given, else overwrite. The build must exist. */
  async storeImageUpload(image: string, buildId: string, provider: string, upload: ImageUpload, uploadId?: string): Promise<string> {
    if (!(await this.exists(paths.build(image, buildId)))) {
      throw new ZkError('ENONODE', `Cannot find build ${buildId} of image ${image}`, { image, buildId });
    }
    const id = uploadId ?? upload.id ?? undefined;
    if (id === undefined) {
      const created = await this.create(paths.uploadPrefix(image, buildId, provider), uploadToData(upload), 'persistent_sequential', true);
      const newId = paths.basename(created);
      Object.assign(upload, { id: newId, image, build_id: buildId, provider });
      return newId;
    }
    await this.setData(paths.upload(image, buildId, provider, id), uploadToData(upload));
    return id;
  }

  async deleteUpload(image: string, buildId: string, provider: string, uploadId: string): Promise<void> {
    await this.deleteIfExists(paths.upload(image, buildId, provider, uploadId));
  }

  async deleteBuildProvider(image: string, buildId: string, provider: string): Promise<void> {
    await this.deleteRecursive(paths.buildProvider(image, buildId, provider));
  }

  /** `nodepool image-build`: an empty `request-build` znode. */
  async submitBuildRequest(image: string): Promise<void> {
    await this.mkdirp(paths.imageBuildRequest(image));
  }

  async hasBuildRequest(image: string): Promise<boolean> {
    return this.exists(paths.imageBuildRequest(image));
  }

  async removeBuildRequest(image: string): Promise<void> {
    await this.deleteIfExists(paths.imageBuildRequest(image));
  }

  /**
   * A pending `image-build` request, as `image-status` shows it: `pending` until a builder holds
   * the image's build lock and has created the build it runs (Nodepool's rule: the lock has a
   * contender and the newest build znode is younger than the lock dir), `building` after.
   */
  async getBuildRequest(image: string): Promise<{ pending: boolean; createdAt: number } | null> {
    const req = await this.stat(paths.imageBuildRequest(image));
    if (req === null) return null;
    let pending = true;
    const lock = await this.stat(paths.imageBuildLock(image));
    if (lock !== null && lock.numChildren > 0) {
      const ids = await this.getBuildIds(image);
      const newest = ids.length > 0 ? await this.stat(paths.build(image, ids[ids.length - 1] ?? '')) : null;
      pending = newest === null || statTimeMs(newest.ctime) < statTimeMs(lock.ctime);
    }
    return { pending, createdAt: statTimeMs(req.ctime) / 1000 };
  }

  /** `nodepool image-pause` / `image-unpause`: set or clear the image's pause flag (idempotent). */
  async setImagePaused(image: string, paused: boolean): Promise<void> {
    if (paused) await this.mkdirp(paths.imagePause(image));
    else await this.deleteIfExists(paths.imagePause(image));
  }

  async isImagePaused(image: string): Promise<boolean> {
    return this.exists(paths.imagePause(image));
  }

  /**
   * `nodepool export-image-data`: the pause flags, builds and uploads of every image as znode
   * path → data text, in Nodepool's format (a backup that `importImageData` restores).
   */
  async exportImageData(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const image of await this.getImageNames()) {
      if (await this.isImagePaused(image)) out[paths.imagePause(image)] = '';
      for (const buildId of await this.getBuildIds(image)) {
        const build = await this.getData(paths.build(image, buildId));
        if (build === null) continue;
        out[paths.build(image, buildId)] = build.toString('utf8');
        for (const provider of await this.getBuildProviders(image, buildId)) {
          for (const uploadId of await this.getUploadIds(image, buildId, provider)) {
            const upload = await this.getData(paths.upload(image, buildId, provider, uploadId));
            if (upload !== null) out[paths.upload(image, buildId, provider, uploadId)] = upload.toString('utf8');
          }
        }
      }
    }
    return out;
  }

  /**
   * `nodepool import-image-data`: write an export back (meant for a quiet system: no builder
   * running). Every entry is checked first and nothing is written if one is not a pause flag,
   * build or upload that parses; then, like Nodepool, each sequence counter (builds, uploads) is
   * moved past the highest imported number, so the next build or upload cannot collide with an
   * imported one. Returns the number of znodes written.
   */
  async importImageData(data: Readonly<Record<string, unknown>>): Promise<number> {
    const texts = new Map<string, string>();
    const highest = new Map<string, number>();
    for (const [path, value] of Object.entries(data)) {
      if (typeof value !== 'string') throw new ImageDataError(path, 'the value is not a string');
      const m = IMAGE_DATA_PATH.exec(path);
      if (m === null) throw new ImageDataError(path, 'not an image build, upload or pause znode');
      const [, image = '', buildId, provider, uploadId] = m;
      if (buildId === undefined) {
        // a pause flag
      } else if (provider === undefined || uploadId === undefined) {
        if (buildId === LOCK_CHILD || buildFromData(image, buildId, Buffer.from(value)) === null) {
          throw new ImageDataError(path, 'not an image build');
        }
      } else if (uploadId === LOCK_CHILD || uploadFromData(image, buildId, provider, uploadId, Buffer.from(value)) === null) {
        throw new ImageDataError(path, 'not an image upload');
      }
      texts.set(path, value);
      const id = uploadId ?? buildId;
      if (id !== undefined && /^\d+$/.test(id)) {
        const parent = paths.parent(path);
        highest.set(parent, Math.max(highest.get(parent) ?? 0, Number(id)));
      }
    }
    for (const [parent, num] of highest) {
      // sequential creates until the counter has passed `num`; the imported ones are kept
      for (;;) {
        const created = await this.create(`${parent}/`, EMPTY_DATA, 'persistent_sequential');
        if (!texts.has(created)) await this.delete(created);
        if (Number(created.slice(parent.length + 1)) >= num) break;
      }
    }
    for (const [path, text] of texts) {
      const bytes = Buffer.from(text, 'utf8');
      if (await this.exists(path)) await this.setData(path, bytes);
      else await this.create(path, bytes);
    }
    return texts.size;
  }

  /** nodepool-ts `image-upload`: ask the builder owning the newest build to upload it again. */
  async submitUploadRequest(image: string, provider: string): Promise<void> {
    await this.mkdirp(paths.imageUploadRequest(image, provider));
  }

  async hasUploadRequest(image: string, provider: string): Promise<boolean> {
    return this.exists(paths.imageUploadRequest(image, provider));
  }

  async removeUploadRequest(image: string, provider: string): Promise<void> {
    await this.deleteIfExists(paths.imageUploadRequest(image, provider));
  }

  /** Providers with a pending upload request for `image`, sorted. */
  async getUploadRequests(image: string): Promise<string[]> {
    return (await this.getChildren(paths.imageUploadRequests(image))).sort();
  }

  /**
   * Write a build's progress record (nodepool-ts addition, plain JSON). Never recreates a build
   * that was deleted meanwhile (no makepath): returns false then.
   */
  async storeBuildProgress(image: string, buildId: string, progress: Record<string, unknown>): Promise<boolean> {
    const path = paths.buildProgress(image, buildId);
    const data = Buffer.from(JSON.stringify(progress), 'utf8');
    try {
      await this.setData(path, data);
      return true;
    } catch (err) {
      if (!isNoNode(err)) throw err;
    }
    try {
      await this.create(path, data, 'persistent', false);
      return true;
    } catch (err) {
      if (isNoNode(err)) return false;
      if (isNodeExists(err)) {
        await this.setData(path, data);
        return true;
      }
      throw err;
    }
  }

  /** A build's progress record, or null when absent or unreadable. */
  async getBuildProgress(image: string, buildId: string): Promise<Record<string, unknown> | null> {
    return parseJsonObject(await this.getData(paths.buildProgress(image, buildId)));
  }

  /** Per-image build lock: `/nodepool/images/<image>/builds/lock`. */
  imageBuildLock(image: string): Lock {
    return new Lock(this, paths.imageBuildLock(image));
  }

  /** Per-build lock: `.../builds/<id>/lock`. */
  buildLock(image: string, buildId: string): Lock {
    return new Lock(this, paths.buildLock(image, buildId));
  }

  /** Per-(build, provider) upload lock: `.../providers/<p>/images/lock`. */
  uploadLock(image: string, buildId: string, provider: string): Lock {
    return new Lock(this, paths.uploadLock(image, buildId, provider));
  }

  // ================================================================== internals

  private transferLock(from: object, to: object, what: string): void {
    const lock = this.objectLocks.get(from);
    if (!lock) throw new LockError(`${what} does not hold a lock`);
    this.objectLocks.set(to, lock);
  }
}
