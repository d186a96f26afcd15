// The NodeLauncher of a metastatic pool: a node is "launched" by taking a slot on a backing node
// (the driver requests one when none has a free slot) and copying the backing node's connection
// fields; with `host-key-checking` its address is scanned as well. Attempts follow Nodepool's
// state machine: a failed one frees the slot and is retried up to `launch-retries` times.
import type { MetastaticPool, MetastaticPoolLabel, MetastaticProvider } from '@nodepool-ts/core/config';
import type { Node } from '@nodepool-ts/core/model';
import type { Logger } from '@nodepool-ts/core/log';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import { applyBackingNode, METASTATIC_IMAGE_ID, MetastaticError } from '@nodepool-ts/driver-metastatic';
import type { MetastaticManager } from './drivers.js';
import { LaunchError, runLaunchAttempts, store, type LaunchResult } from './node-launcher.js';

export interface MetastaticLaunchContext {
  zk: ZooKeeper;
  provider: MetastaticProvider;
  pool: MetastaticPool;
  label: MetastaticPoolLabel;
  manager: MetastaticManager;
  log: Logger;
  signal: AbortSignal;
  onStore?: (node: Node, reason: string) => void;
  onAttempt?: (attempt: { attempt: number; startedAt: number; endedAt: number; result: LaunchResult; error: string | null }) => void;
  /** a min-ready request's node: its `ready` write also clears `allocated_to` */
  releaseWhenReady?: boolean;
  /** host keys of the backing node's server from its own driver without a scan (the fake cloud); null: scan */
  backingHostKeys?: (backing: Node) => Promise<string[] | null>;
  /** scan host keys over SSH (`host-key-checking`) */
  keyscan?: (host: string, port: number, timeoutMs: number, signal: AbortSignal) => Promise<string[]>;
}

function classify(err: unknown): LaunchResult {
  if (err instanceof LaunchError) return err.result;
  return 'error.unknown';
}

/** Fields a failed attempt wrote that must not survive it (they name the slot it gave back). */
function clearSlot(node: Node): void {
  node.external_id = null;
  delete node.extra['driver_data'];
  delete node.extra['slot'];
}

async function scanKeys(ctx: MetastaticLaunchContext, node: Node, backing: Node): Promise<string[]> {
  const fromDriver = ctx.backingHostKeys ? await ctx.backingHostKeys(backing) : null;
  if (fromDriver !== null) return fromDriver;
  if (node.interface_ip === null || typeof node.connection_port !== 'number') {
    throw new LaunchError('error.network', `backing node ${backing.id ?? ''} has no address to scan`);
  }
  if (!ctx.keyscan) return [];
  return ctx.keyscan(node.interface_ip, node.connection_port, ctx.provider.bootTimeout * 1000, ctx.signal);
}

async function attempt(ctx: MetastaticLaunchContext, node: Node): Promise<void> {
  const id = node.id ?? '';
  const { backing, slot } = await ctx.manager.allocate(ctx.label, id, {
    timeoutMs: ctx.provider.launchTimeout * 1000, signal: ctx.signal,
  });
  applyBackingNode(node, backing, slot, { name: ctx.pool.name, provider: ctx.provider.name });
  ctx.log.info({ node: id, backingNode: backing.id, slot }, `Node ${id} takes slot ${slot} of backing node ${backing.id ?? ''}`);
  if (!ctx.label.hostKeyChecking) return;
  // (shown by `nodepool list` while the scan runs, as Nodepool stores the node before its nodescan)
  await store(ctx, node, 'slot assigned');
  let keys: string[];
  try {
    keys = await scanKeys(ctx, node, backing);
  } catch (err) {
    await ctx.manager.nodescanFailed(id).catch((e: unknown) => {
      ctx.log.error({ node: id, err: (e as Error).message }, `Could not mark backing node ${backing.id ?? ''} failed`);
    });
    throw new LaunchError('error.keyscan', `Can't scan instance ${id} key: ${(err as Error).message}`, err);
  }
  if ((node.connection_type === 'ssh' || node.connection_type === 'network_cli') && keys.length === 0) {
    await ctx.manager.nodescanFailed(id).catch(() => undefined);
    throw new LaunchError('error.keyscan', `Unable to gather host keys of ${id}`);
  }
  if (keys.length > 0) node.host_keys = keys;
}

/**
 * Launch `node` (stored, locked, state `building`) on a backing node. Resolves with the state it
 * stored last: `ready` or `failed` (a metastatic launch is never aborted for quota).
 */
export function launchMetastaticNode(ctx: MetastaticLaunchContext, node: Node): Promise<'ready' | 'failed' | 'aborted'> {
  node.image_id = METASTATIC_IMAGE_ID;
  return runLaunchAttempts(node, {
    ctx,
    attempt: () => attempt(ctx, node),
    classify,
    afterFailure: async (_result, err) => {
      if (node.id !== null) ctx.manager.deallocate(node.id);
      clearSlot(node);
      return err instanceof MetastaticError && err.code === 'ESTOPPED';
    },
  });
}
