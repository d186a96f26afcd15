// `nodepool list`, `delete` and `hold` (hold is beyond Nodepool 3.x).
import type { Node } from '@nodepool-ts/core/model';
import { LockTimeoutError, paths } from '@nodepool-ts/core/zk';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import { CliError } from '../errors.js';
import type { CommandContext } from '../runtime.js';
import { NODE_COLUMNS, NODE_LIST_FIELDS, nodeList, nodeRowCells } from '../status.js';
import type { NodeRow } from '../status.js';
import { formatObjects } from '../table.js';
import { deleteNodeNow } from './provider-manager.js';
import { bool, notice, printJson, str } from './common.js';
import type { Command } from './common.js';

/** How long `delete`/`hold` wait for a node lock held by someone else (Nodepool: 5 s). */
export const NODE_LOCK_TIMEOUT_MS = 5_000;

export function printNodes(ctx: CommandContext, rows: NodeRow[], detail: boolean): void {
  if (ctx.json) {
    printJson(ctx, rows);
    return;
  }
  ctx.out(formatObjects(NODE_COLUMNS, rows.map(nodeRowCells), detail ? null : NODE_LIST_FIELDS));
}

export const listCommand: Command = async (args, ctx) => {
  const zk = await ctx.zookeeper();
  printNodes(ctx, await nodeList(zk, { now: ctx.now() }), bool(args, 'detail'));
  return 0;
};

async function lockForUpdate(zk: ZooKeeper, node: Node, id: string): Promise<void> {
  try {
    await zk.lockNode(node, { blocking: true, timeoutMs: NODE_LOCK_TIMEOUT_MS });
  } catch (err) {
    if (err instanceof LockTimeoutError) {
      throw new CliError('ELOCKTIMEOUT',
        `Timeout trying to lock node ${id} (locked by another process for more than ${NODE_LOCK_TIMEOUT_MS / 1000}s)`
        + await backingNodeHint(zk, id), 1, { node: id });
    }
    throw err;
  }
}

/** Requestor and lock identifier of Nodepool's metastatic driver, `NodePool:metastatic:<provider>`. */
const METASTATIC_HOLDER = 'NodePool:metastatic:';

/**
 * A metastatic backing node is held by a persistent lock for as long as it serves slots: say so,
 * and which nodes to delete instead, rather than leave the operator with a bare timeout.
 */
async function backingNodeHint(zk: ZooKeeper, id: string): Promise<string> {
  const holders = await zk.getNodeLockContenders(id).catch(() => [] as string[]);
  const holder = holders.find((h) => h.startsWith(METASTATIC_HOLDER));
  if (holder === undefined) return '';
  const serving = (await zk.getNodes().catch(() => [] as Node[])).filter((n) => {
    const dd = n.extra['driver_data'];
    return dd !== null && typeof dd === 'object' && (dd as Record<string, unknown>)['backing_node'] === id;
  }).map((n) => n.id ?? '').sort();
  return `: it is a backing node of metastatic provider ${holder.slice(METASTATIC_HOLDER.length)}`
    + (serving.length > 0 ? `, serving node(s) ${serving.join(', ')}; delete those` : '; delete the metastatic nodes on it')
    + ' and the launcher releases it once idle';
}

/**
 * Lock the node, apply `change` to a copy read UNDER the lock (Nodepool writes back the copy it
 * read before locking, which can undo a concurrent change), store, unlock. Returns false when the
 * node disappeared meanwhile.
 */
async function updateLocked(
  zk: ZooKeeper, node: Node, id: string, change: (fresh: Node) => void,
): Promise<boolean> {
  await lockForUpdate(zk, node, id);
  try {
    const fresh = await zk.getNode(id);
    if (fresh === null) return false;
    change(fresh);
    await zk.storeNode(fresh);
    return true;
  } finally {
    await zk.unlockNode(node);
  }
}

export const deleteCommand: Command = async (args, ctx) => {
  const id = str(args, 'id');
  const zk = await ctx.zookeeper();
  const node = await zk.getNode(id);
  if (node === null) {
    notice(ctx, `Node id ${id} not found`);
    return 0;
  }
  if (bool(args, 'now')) {
    const config = await ctx.loadConfig();
    const provider = node.provider === null ? undefined : config.providers.get(node.provider);
    if (provider === undefined) {
      notice(ctx, `Provider ${String(node.provider)} for node ${id} not defined on this launcher`);
      return 0;
    }
    await lockForUpdate(zk, node, id);
    // deleteNodeNow removes the server and the znode (and with it the lock); unlock only if it
    // failed before that.
    try {
      await deleteNodeNow(zk, provider, node, ctx);
    } finally {
      if (await zk.exists(paths.node(id)).catch(() => false)) {
        await zk.unlockNode(node).catch(() => undefined);
      }
    }
  } else {
    const found = await updateLocked(zk, node, id, (fresh) => {
      fresh.state = 'deleting';
      fresh.state_time = ctx.now();
    });
    if (!found) {
      notice(ctx, `Node id ${id} not found`);
      return 0;
    }
  }
  printNodes(ctx, await nodeList(zk, { nodeId: id, now: ctx.now() }), false);
  return 0;
};

export const holdCommand: Command = async (args, ctx) => {
  const id = str(args, 'id');
  const reason = args.reason;
  const zk = await ctx.zookeeper();
  const node = await zk.getNode(id);
  const found = node !== null && await updateLocked(zk, node, id, (fresh) => {
    fresh.state = 'hold';
    fresh.state_time = ctx.now();
    if (typeof reason === 'string') fresh.comment = reason;
  });
  if (!found) {
    notice(ctx, `Node id ${id} not found`);
    return 0;
  }
  printNodes(ctx, await nodeList(zk, { nodeId: id, now: ctx.now() }), false);
  return 0;
};
