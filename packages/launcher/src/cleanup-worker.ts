// CleanupWorker (§3.10): request-lock garbage, leaked servers, lost requests, max-ready-age,
// max-hold-age and empty node znodes. Every task is isolated: one failing never stops the others.
// Period: 60 s, or the `cron: cleanup` schedule when configured (node-cron).
import { isCloudProvider } from '@nodepool-ts/core/config';
import type { Node } from '@nodepool-ts/core/model';
import { newNode } from '@nodepool-ts/core/model';
import { leakedServers } from '@nodepool-ts/core/provider';
import { paths } from '@nodepool-ts/core/zk';
import type { Launcher } from './launcher.js';

const LOCK_CLEANUP_S = 8 * 3600;

export class CleanupWorker {
  private readonly log;
  private running: Promise<void> | null = null;

  constructor(private readonly launcher: Launcher) {
    this.log = launcher.logger('nodepool.CleanupWorker');
  }

  /** One full cleanup cycle; concurrent calls share the running cycle. */
  run(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.cycle().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async cycle(): Promise<void> {
    if (this.launcher.zk.state !== 'connected') return;
    const tasks: [string, () => Promise<void>][] = [
      ['request locks', () => this.cleanupRequestLocks()],
      ['leaked resources', () => this.cleanupLeakedInstances()],
      ['lost requests', () => this.cleanupLostRequests()],
      ['max-ready-age', () => this.cleanupMaxReadyAge()],
      ['max-hold-age', () => this.cleanupMaxHoldAge()],
      ['empty nodes', () => this.cleanupEmptyNodes()],
    ];
    for (const [name, task] of tasks) {
      try {
        await task();
      } catch (err) {
        if (this.launcher.zk.state !== 'connected') return;
        this.log.error({ task: name, err: (err as Error).message }, `Exception in CleanupWorker task ${name}`);
      }
    }
  }

  async cleanupRequestLocks(): Promise<void> {
    const zk = this.launcher.zk;
    const now = Date.now();
    for (const id of await zk.getNodeRequestLockIds()) {
      if (this.launcher.requestCache.get(id)) continue;
      const stat = await zk.getNodeRequestLockStat(id);
      if (stat === null || (now - stat.mtimeMs) / 1000 < LOCK_CLEANUP_S) continue;
      if ((await zk.getNodeRequest(id)) !== null) continue;
      await zk.deleteNodeRequestLock(id);
      this.log.info(`Deleted orphaned request lock ${id}`);
    }
  }

  /** Servers tagged as ours whose node znode is gone get an artificial `deleting` record. */
  async cleanupLeakedInstances(): Promise<void> {
    const l = this.launcher;
    // The watch-fed cache knows every node; a server looks leaked only if the cache lacks its
    // node, and that is confirmed against ZooKeeper itself before anything is deleted.
    const nodes = l.nodeCache.all();
    const known = new Set<string>(l.nodeCache.ids());
    const beingDeleted = new Set(nodes.map((n) => n.external_id).filter((x): x is string => x !== null));
    for (const [name, manager] of l.managers()) {
      if (manager.kind !== 'cloud') {
        if (manager.kind === 'static') await manager.syncRegistrations();
        // metastatic: idle backing nodes are released, nodes of vanished ones retired
        else await manager.cleanup();
        continue;
      }
      const servers = await manager.listServers();
      for (const server of leakedServers(servers, name, known)) {
        if (beingDeleted.has(server.id)) continue;
        const owner = server.metadata.nodepool_node_id;
        if (owner && (await l.zk.exists(paths.node(owner)))) continue;
        const provider = l.config.providers.get(name);
        const node = newNode({
          state: 'deleting',
          provider: name,
          external_id: server.id,
          hostname: server.name,
          cloud: provider && isCloudProvider(provider) ? provider.cloud : null,
        });
        await l.storeNode(node, 'CleanupWorker', `leaked server ${server.id}`);
        this.log.warn({ provider: name, server: server.id }, `Deleting leaked instance ${server.id} (${server.name}) in ${name}`);
        l.metrics?.leakedRemoved(name, 'instances', 1);
      }
      if (manager.cleanupLeakedResources) await manager.cleanupLeakedResources();
    }
  }

  /** `pending` requests nobody holds the lock of: their launcher died (§2.1). */
  async cleanupLostRequests(): Promise<void> {
    const l = this.launcher;
    for (const cached of l.requestCache.all()) {
      if (cached.state !== 'pending' || cached.id === null) continue;
      if (l.ownsRequest(cached.id)) continue;
      if (!(await l.zk.lockNodeRequest(cached, { blocking: false }))) continue;
      try {
        const req = await l.zk.getNodeRequest(cached.id);
        if (req === null || req.state !== 'pending') continue;
        for (const node of l.nodeCache.all()) {
          if (node.allocated_to !== req.id) continue;
          if (!(await l.zk.lockNode(node, { blocking: true, timeoutMs: 10_000 }).catch(() => false))) {
            this.log.warn(`Unable to deallocate node ${node.id} from lost request ${req.id}`);
            return;
          }
          try {
            const fresh = node.id !== null ? await l.zk.getNode(node.id) : null;
            if (fresh && fresh.allocated_to === req.id) {
              fresh.allocated_to = null;
              await l.storeNode(fresh, 'CleanupWorker', `deallocated from lost request ${req.id}`);
            }
          } finally {
            await l.zk.unlockNode(node).catch(() => undefined);
          }
        }
        req.state = 'requested';
        req.nodes = [];
        req.state_time = Date.now() / 1000;
        await l.zk.storeNodeRequest(req);
        l.recordRequest(req, 'CleanupWorker', 'lost request reset');
        this.log.info(`Reset lost request ${req.id}`);
      } finally {
        await l.zk.unlockNodeRequest(cached).catch(() => undefined);
      }
    }
  }

  private async markDeleting(node: Node, reason: string, check: (n: Node) => boolean): Promise<void> {
    const l = this.launcher;
    if (!(await l.zk.lockNode(node, { blocking: false }))) return;
    try {
      const fresh = node.id !== null ? await l.zk.getNode(node.id) : null;
      if (fresh === null || !check(fresh)) return;
      fresh.state = 'deleting';
      fresh.state_time = Date.now() / 1000;
      await l.storeNode(fresh, 'CleanupWorker', reason);
      this.log.info(`Marking node ${fresh.id} for deletion: ${reason}`);
    } finally {
      await l.zk.unlockNode(node).catch(() => undefined);
    }
  }

  async cleanupMaxReadyAge(): Promise<void> {
    const l = this.launcher;
    const now = Date.now() / 1000;
    for (const node of l.nodeCache.all()) {
      if (node.state !== 'ready' || node.allocated_to !== null) continue;
      if (node.provider === null || !l.hasProvider(node.provider)) continue;
      const label = node.type[0] !== undefined ? l.config.labels.get(node.type[0]) : undefined;
      if (!label || label.maxReadyAge <= 0) continue;
      if (now - node.state_time <= label.maxReadyAge) continue;
      await this.markDeleting(node, `max-ready-age ${label.maxReadyAge}s exceeded`,
        (n) => n.state === 'ready' && n.allocated_to === null);
    }
  }

  async cleanupMaxHoldAge(): Promise<void> {
    const l = this.launcher;
    const now = Date.now() / 1000;
    const maxHoldAge = l.config.maxHoldAge > 0 ? l.config.maxHoldAge : Infinity;
    for (const node of l.nodeCache.all()) {
      if (node.state !== 'hold') continue;
      if (node.provider === null || !l.hasProvider(node.provider)) continue;
      const exp = node.hold_expiration !== null && node.hold_expiration > 0 ? node.hold_expiration : Infinity;
      const limit = Math.min(exp, maxHoldAge);
      if (limit === Infinity || now - node.state_time <= limit) continue;
      await this.markDeleting(node, `held for more than ${limit}s`, (n) => n.state === 'hold');
    }
  }

  async cleanupEmptyNodes(): Promise<void> {
    const zk = this.launcher.zk;
    for (const id of this.launcher.nodeCache.ids()) {
      // parsed nodes are not empty; only ids the cache could not parse need a look
      if (this.launcher.nodeCache.get(id) !== undefined) continue;
      const data = await zk.getNodeData(id);
      if (data !== null && data.length === 0) {
        await zk.deleteRawNode(id);
        this.log.info(`Deleted empty node znode ${id}`);
      }
    }
  }
}
