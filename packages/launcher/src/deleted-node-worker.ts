// DeletedNodeWorker (§3.9): reaps unlocked nodes in a reapable state and deallocates READY nodes
// whose request vanished. Runs on node-cache changes (debounced) and every 5 s as Nodepool does.
// Each deletion runs on its own (Nodepool starts a NodeDeleter thread per node): a server whose
// delete hangs in the cloud never holds up the others. A failed deletion is retried with backoff.
import { cloneNode, type Node } from '@nodepool-ts/core/model';
import { NotFoundError, ProviderTimeoutError } from '@nodepool-ts/core/provider';
import type { Logger } from '@nodepool-ts/core/log';
import { paths } from '@nodepool-ts/core/zk';
import { settledWithin } from '@nodepool-ts/core/util';
import { STOP_WAIT_MS } from './min-ready.js';
import type { CloudManager } from './drivers.js';
import type { Launcher } from './launcher.js';
import { retryConnectionLoss } from './zk-retry.js';

const DELETE_INTERVAL_MS = 5_000;
/** Nodepool's limit on waiting for one server to go (waitForNodeCleanup) */
const SERVER_DELETE_WAIT_MS = 600_000;
/** a delete the cloud accepted but did not complete is issued again after this, then twice as long ... */
const DELETE_REISSUE_FIRST_MS = 5_000;
const DELETE_REISSUE_MAX_MS = 120_000;
/** a failed deletion (cloud error) is retried after this, doubling up to the cap */
const DELETE_RETRY_FIRST_MS = 5_000;
const DELETE_RETRY_MAX_MS = 300_000;
/** deletions running at once per launcher */
const MAX_DELETES = 64;
/**
 * An `init` node is locked by its launcher right after it is stored; one still unlocked after
 * this long was left by a handler that gave up between the two (a lost session, an error).
 */
const INIT_GRACE_MS = 60_000;
const INIT_GONE_GRACE_MS = 5_000;
/** a READY node stays allocated to a vanished request this long before it is deallocated */
const DEALLOCATE_AFTER_MS = 3_000;
export const REAPABLE = new Set(['used', 'in-use', 'building', 'failed', 'deleting', 'deleted', 'aborted']);

export class DeletedNodeWorker {
  private timer: NodeJS.Timeout | null = null;
  private inProgress = new Map<string, Promise<void>>();
  /** nodes whose deletion failed: how often, and not before when to try again */
  private retries = new Map<string, { failures: number; notBefore: number }>();
  private readonly abort = new AbortController();
  private watchedLocks = new Set<string>();
  /** READY nodes allocated to a request that is not there: since when (ms epoch) */
  private unallocatedSince = new Map<string, number>();
  private running = false;
  private again = false;
  private stopped = false;
  /** the pass running now (stop() waits for it: it may still be starting deletes) */
  private passing: Promise<void> | null = null;
  private readonly log;

  constructor(private readonly launcher: Launcher) {
    this.log = launcher.logger('nodepool.DeletedNodeWorker');
  }

  start(): void {
    this.timer = setInterval(() => this.trigger(), DELETE_INTERVAL_MS);
    this.timer.unref();
    this.trigger();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    // waits for servers to go are cut short; their nodes stay `deleting` for the next launcher
    this.abort.abort();
    // bounded: a ZooKeeper reply that never comes must not hold the launcher's stop
    if (!(await settledWithin(this.passing, STOP_WAIT_MS))) {
      this.log.warn(`Deleted-node pass still running after ${STOP_WAIT_MS / 1000} s; stopping without it`);
    }
    await Promise.allSettled([...this.inProgress.values()]);
  }

  /** Run a pass soon; passes never overlap. */
  trigger(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    setImmediate(() => {
      if (this.stopped) {
        this.running = false;
        return;
      }
      this.passing = this.pass().catch((err: unknown) => {
        this.log.error({ err: (err as Error).message }, 'Error in deleted-node pass');
      }).finally(() => {
        this.passing = null;
        this.running = false;
        if (this.again) {
          this.again = false;
          this.trigger();
        }
      });
    });
  }

  /** Only nodes that changed into a reapable state need an immediate pass. */
  onNodeChange(node: Node | null): void {
    if (node === null) return;
    if (node.state === 'used' || node.state === 'deleting' || node.state === 'failed'
      || node.state === 'aborted' || node.state === 'deleted') this.trigger();
  }

  private async pass(): Promise<void> {
    const l = this.launcher;
    if (l.zk.state !== 'connected') return;
    const nodes = l.nodeCache.all();
    const work: Promise<void>[] = [];
    const now = Date.now();
    const present = new Set<string>();
    for (const node of nodes) {
      if (this.stopped) break;
      if (node.id !== null) present.add(node.id);
      if (node.id === null || this.inProgress.has(node.id)) continue;
      if (node.provider !== null && !l.hasProvider(node.provider)) continue;
      if (node.state === 'ready' && node.allocated_to !== null) {
        if (l.requestCache.get(node.allocated_to)) continue;
        // Zuul deletes a fulfilled request before it marks the nodes in-use: a request gone
        // for a moment is normal, and the node is locked by Zuul meanwhile. Deallocate once it
        // has been gone for a while (Nodepool looks every 5 s).
        const since = this.unallocatedSince.get(node.id) ?? now;
        this.unallocatedSince.set(node.id, since);
        if (now - since >= DEALLOCATE_AFTER_MS) work.push(this.deallocate(node));
        continue;
      }
      if (!REAPABLE.has(node.state) && !this.orphanedInit(node, now)) continue;
      if ((this.retries.get(node.id)?.notBefore ?? 0) > now) continue;
      if (this.inProgress.size + work.length >= MAX_DELETES) break;
      work.push(this.tryDelete(node));
      if (work.length >= 64) {
        await Promise.allSettled(work);
        work.length = 0;
      }
    }
    await Promise.allSettled(work);
    for (const id of this.retries.keys()) if (!present.has(id)) this.retries.delete(id);
    for (const id of this.unallocatedSince.keys()) {
      const n = l.nodeCache.get(id);
      if (n === undefined || n.state !== 'ready' || n.allocated_to === null) this.unallocatedSince.delete(id);
    }
  }

  /**
   * An unlocked `init` node nobody will launch: its launcher is gone (killed between storing
   * and locking it), or it is older than any launch start takes. (Unlocked is checked by the
   * lock attempt that follows.) Nodepool never reaps `init` nodes; they would stay forever.
   */
  private orphanedInit(node: Node, now: number): boolean {
    if (node.state !== 'init') return false;
    const age = now - node.state_time * 1000;
    if (age > INIT_GRACE_MS) return true;
    // (a few seconds first: a launcher that just started may be unknown to our list yet)
    const launcher = node.launcher;
    return age > INIT_GONE_GRACE_MS && launcher !== null && !this.launcher.launchers().some((l) => l.id === launcher);
  }

  private async deallocate(node: Node): Promise<void> {
    const l = this.launcher;
    const request = node.allocated_to;
    if (request === null || (await l.zk.getNodeRequest(request)) !== null) return;
    if (!(await l.zk.lockNode(node, { blocking: false }))) return;
    try {
      const fresh = node.id !== null ? await l.zk.getNode(node.id) : null;
      if (fresh === null || fresh.state !== 'ready' || fresh.allocated_to !== request) return;
      fresh.allocated_to = null;
      await l.storeNode(fresh, 'DeletedNodeWorker', `request ${request} no longer exists`);
      this.log.info(`Deallocating node ${fresh.id} from missing request ${request}`);
    } finally {
      await l.zk.unlockNode(node).catch(() => undefined);
    }
  }

  /**
   * A reapable node still locked (Zuul marks `used`, then unlocks): watch its lock dir so the
   * release wakes us at once instead of on the next 5 s pass.
   */
  private async lockedByOther(id: string): Promise<boolean> {
    if (this.watchedLocks.has(id)) return true;
    // Marked before the read: the release may be notified before our continuation runs (reply
    // and notification in one chunk); marking afterwards would then wait for a watch already spent.
    this.watchedLocks.add(id);
    let fired = false;
    const children = await this.launcher.zk.listChildren(paths.nodeLock(id), () => {
      fired = true;
      this.watchedLocks.delete(id);
      this.trigger();
    }).catch(() => null);
    if (fired) return true; // changed already: the pass it triggered looks again
    if (children === null || children.length === 0) {
      this.watchedLocks.delete(id);
      return false;
    }
    return true;
  }

  /** Watches die with their session: after a new one, every lock is looked at afresh. */
  sessionRenewed(): void {
    this.watchedLocks.clear();
    this.trigger();
  }

  /** Lock the node and start its deletion; resolves once the deletion is under way (or skipped). */
  private async tryDelete(node: Node): Promise<void> {
    const l = this.launcher;
    if (node.id === null) return;
    // A `used` node was just unlocked by Zuul (it marks used, then unlocks): try the lock
    // straight away, and only when that fails watch the lock for its release.
    const likelyFree = node.state === 'used' && !this.watchedLocks.has(node.id);
    if (!likelyFree && await this.lockedByOther(node.id)) return;
    if (this.inProgress.has(node.id)) return;
    if (!(await l.zk.lockNode(node, { blocking: false }))) {
      // (released since our attempt: look again at once; still held: its release wakes us)
      if (likelyFree && !(await this.lockedByOther(node.id))) this.trigger();
      return;
    }
    const id = node.id;
    if (this.stopped) {
      // stop() came while we took the lock: the node is left for the next launcher
      await l.zk.unlockNode(node).catch(() => undefined);
      return;
    }
    const p = this.deleteLocked(node).then((deleted) => {
      if (deleted) this.retries.delete(id);
      else this.failed(id);
    }, async (err: unknown) => {
      if (this.stopped) {
        this.log.info({ node: id, err: (err as Error).message }, `Deleting node ${id} was cut short by the launcher's stop; the next launcher deletes it`);
      } else {
        this.log.error({ node: id, err: (err as Error).message }, `Error deleting node ${id}`);
      }
      // Kept, the lock would outlive this attempt for the life of the session and every later
      // pass would see the node "locked by another" (a dropped connection left nodes undeleted).
      await l.zk.unlockNode(node).catch(() => undefined);
      this.failed(id);
    }).finally(() => {
      this.inProgress.delete(id);
      this.trigger();
    });
    this.inProgress.set(id, p);
  }

  private failed(id: string): void {
    if (this.stopped) return;
    const failures = (this.retries.get(id)?.failures ?? 0) + 1;
    const delay = Math.min(DELETE_RETRY_MAX_MS, DELETE_RETRY_FIRST_MS * 2 ** Math.min(failures - 1, 16));
    this.retries.set(id, { failures, notBefore: Date.now() + delay });
    this.log.info({ node: id, failures }, `Deletion of node ${id} failed ${failures} time(s); retrying in ${Math.round(delay / 1000)} s`);
  }

  /** NodeDeleter: node is locked by us. True when the node is gone (or not ours to delete). */
  private async deleteLocked(node: Node): Promise<boolean> {
    const l = this.launcher;
    const id = node.id;
    // (the cached copy when it is known current: the lock's reply came after any change)
    const cur = id !== null ? l.nodeCache.current(id) : undefined;
    const fresh = cur !== undefined ? cloneNode(cur)
      : id !== null ? await retryConnectionLoss(l.zk, () => l.zk.getNode(id), () => l.zk.holdsLock(node)) : null;
    if (fresh === null) {
      await l.zk.unlockNode(node).catch(() => undefined);
      return true;
    }
    if (fresh.state === 'deleted' || fresh.provider === null) {
      await l.zk.deleteLockedNode(fresh, node);
      l.recordNodeRemoved(fresh, 'DeletedNodeWorker');
      return true;
    }
    if (!REAPABLE.has(fresh.state) && !this.orphanedInit(fresh, Date.now())) {
      await l.zk.unlockNode(node);
      return true;
    }
    return deleteNodeAndServer(l, node, fresh, 'DeletedNodeWorker', this.abort.signal);
  }
}

/** A node's provider has no manager right now (a reload replacing it, or a removed provider). */
export class ProviderNotLoadedError extends Error {
  readonly code = 'ENOPROVIDER';
  constructor(readonly provider: string) {
    super(`provider ${provider} is not loaded`);
    this.name = 'ProviderNotLoadedError';
  }
}

/**
 * Wait for a deleted server to go. A delete the cloud accepted but does not complete is issued
 * again after 5 s, 10 s, 20 s ... (at most every 2 min), up to Nodepool's 10 min in all.
 */
async function waitServerGone(manager: CloudManager, id: string, log: Logger, signal?: AbortSignal): Promise<void> {
  const started = Date.now();
  const deadline = started + SERVER_DELETE_WAIT_MS;
  let wait = DELETE_REISSUE_FIRST_MS;
  for (;;) {
    try {
      await manager.waitForServerDeletion(id, Math.max(0, Math.min(wait, deadline - Date.now())), signal);
      return;
    } catch (err) {
      if (err instanceof NotFoundError) return;
      if (!(err instanceof ProviderTimeoutError) || Date.now() >= deadline || signal?.aborted) throw err;
    }
    log.warn({ server: id }, `Server ${id} still exists ${Math.round((Date.now() - started) / 1000)} s after its delete; deleting it again`);
    try {
      await manager.deleteServer(id);
    } catch (err) {
      if (err instanceof NotFoundError) return;
      throw err;
    }
    wait = Math.min(wait * 2, DELETE_REISSUE_MAX_MS);
  }
}

/** Delete the server behind a locked node, then the znode. Errors keep the record for a retry. */
export async function deleteNodeAndServer(
  launcher: Launcher, lockedRef: Node, fresh: Node, by: string, signal?: AbortSignal,
): Promise<boolean> {
  const l = launcher;
  const log = l.logger('nodepool.NodeDeleter');
  const prev = fresh.state;
  if (fresh.state !== 'deleting') {
    fresh.state = 'deleting';
    fresh.state_time = Date.now() / 1000;
    await l.storeNode(fresh, by, `was ${prev}`);
  }
  const manager = fresh.provider !== null ? l.manager(fresh.provider) : null;
  try {
    if (manager === null && fresh.provider !== null && fresh.external_id) {
      // the provider is being replaced by a reload (or was removed): deleting the znode now
      // would orphan the server; retry once a manager is there (or cleanup finds the leak)
      throw new ProviderNotLoadedError(fresh.provider);
    }
    if (manager && manager.kind === 'cloud' && fresh.external_id) {
      log.info(`Deleting server ${fresh.external_id} for node ${fresh.id}`);
      try {
        await manager.deleteServer(fresh.external_id);
        await waitServerGone(manager, fresh.external_id, log, signal);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
    await l.zk.deleteLockedNode(fresh, lockedRef);
    l.recordNodeRemoved(fresh, by);
    if (manager?.nodeDeleted) await manager.nodeDeleted(fresh);
    return true;
  } catch (err) {
    if (signal?.aborted === true) {
      // the launcher is stopping: the next one (or its cleanup) finishes the deletion
      log.info({ node: fresh.id }, `Deletion of node ${fresh.id} interrupted by shutdown; it stays deleting`);
    } else {
      log.error({ node: fresh.id, err: (err as Error).message },
        `Exception deleting node ${fresh.id}; will retry: ${(err as Error).message}`);
    }
    await l.zk.unlockNode(lockedRef).catch(() => undefined);
    return false;
  }
}
