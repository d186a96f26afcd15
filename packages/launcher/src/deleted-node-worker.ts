// DeletedNodeWorker (§3.9): reaps unlocked nodes in a reapable state and deallocates READY nodes
// whose request vanished. Runs on node-cache changes (debounced) and every 5 s as Nodepool does.
import type { Node } from '@nodepool-ts/core/model';
import { NotFoundError } from '@nodepool-ts/core/provider';
import { paths } from '@nodepool-ts/core/zk';
import type { Launcher } from './launcher.js';

const DELETE_INTERVAL_MS = 5_000;
const SERVER_DELETE_WAIT_MS = 600_000;
export const REAPABLE = new Set(['used', 'in-use', 'building', 'failed', 'deleting', 'deleted', 'aborted']);

export class DeletedNodeWorker {
  private timer: NodeJS.Timeout | null = null;
  private inProgress = new Map<string, Promise<void>>();
  private watchedLocks = new Set<string>();
  private running = false;
  private again = false;
  private stopped = false;
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
      void this.pass().finally(() => {
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
    for (const node of nodes) {
      if (node.id === null || this.inProgress.has(node.id)) continue;
      if (node.provider !== null && !l.hasProvider(node.provider)) continue;
      if (node.state === 'ready' && node.allocated_to !== null) {
        if (!l.requestCache.get(node.allocated_to)) work.push(this.deallocate(node));
        continue;
      }
      if (!REAPABLE.has(node.state)) continue;
      work.push(this.tryDelete(node));
      if (work.length >= 64) {
        await Promise.allSettled(work);
        work.length = 0;
      }
    }
    await Promise.allSettled(work);
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
    const children = await this.launcher.zk.listChildren(paths.nodeLock(id), () => {
      this.watchedLocks.delete(id);
      this.trigger();
    }).catch(() => null);
    if (children === null || children.length === 0) return false;
    this.watchedLocks.add(id);
    return true;
  }

  private async tryDelete(node: Node): Promise<void> {
    const l = this.launcher;
    if (node.id === null) return;
    if (await this.lockedByOther(node.id)) return;
    if (!(await l.zk.lockNode(node, { blocking: false }))) return;
    const id = node.id;
    const p = this.deleteLocked(node).catch((err: unknown) => {
      this.log.error({ node: id, err: (err as Error).message }, `Error deleting node ${id}`);
    }).finally(() => {
      this.inProgress.delete(id);
    });
    this.inProgress.set(id, p);
    await p;
  }

  /** NodeDeleter: node is locked by us. */
  private async deleteLocked(node: Node): Promise<void> {
    const l = this.launcher;
    const fresh = node.id !== null ? await l.zk.getNode(node.id) : null;
    if (fresh === null) {
      await l.zk.unlockNode(node).catch(() => undefined);
      return;
    }
    if (fresh.state === 'deleted' || fresh.provider === null) {
      await l.zk.deleteNode(fresh);
      l.recordNodeRemoved(fresh, 'DeletedNodeWorker');
      return;
    }
    if (!REAPABLE.has(fresh.state)) {
      await l.zk.unlockNode(node);
      return;
    }
    await l.deleteNodeLocked(node, fresh, 'DeletedNodeWorker');
  }
}

/** Delete the server behind a locked node, then the znode. Errors keep the record for a retry. */
export async function deleteNodeAndServer(
  launcher: Launcher, lockedRef: Node, fresh: Node, by: string,
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
    if (manager && manager.kind === 'cloud' && fresh.external_id) {
      log.info(`Deleting server ${fresh.external_id} for node ${fresh.id}`);
      try {
        await manager.deleteServer(fresh.external_id);
        await manager.waitForServerDeletion(fresh.external_id, SERVER_DELETE_WAIT_MS);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
    await l.zk.deleteNode(fresh);
    l.recordNodeRemoved(fresh, by);
    if (manager?.nodeDeleted) await manager.nodeDeleted(fresh);
    return true;
  } catch (err) {
    log.error({ node: fresh.id, err: (err as Error).message },
      `Exception deleting node ${fresh.id}; will retry: ${(err as Error).message}`);
    await l.zk.unlockNode(lockedRef).catch(() => undefined);
    return false;
  }
}
