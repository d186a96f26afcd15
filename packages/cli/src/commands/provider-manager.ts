// Cloud access for the two commands that need it (`delete --now`, `alien-image-list`). Drivers
// are wired up in @nodepool-ts/launcher (createProviderManager). It is imported at run time, not
// compiled against: the launcher's web API reuses this package's table code, and a build-time
// dependency both ways would be a project-reference cycle.
import { isCloudProvider, type Config, type Provider } from '@nodepool-ts/core/config';
import type { Node } from '@nodepool-ts/core/model';
import { NotFoundError } from '@nodepool-ts/core/provider';
import type { ProviderManager } from '@nodepool-ts/core/provider';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';

/** How long `delete --now` waits for the cloud to remove the server (Nodepool: 600 s). */
export const SERVER_DELETE_WAIT_MS = 600_000;

type CreateProviderManager = (provider: Provider, ctx: { stateDir: string }) => ProviderManager;

const LAUNCHER_MODULE: string = '@nodepool-ts/launcher';

async function loadFactory(): Promise<CreateProviderManager> {
  let mod: { createProviderManager?: unknown };
  try {
    mod = (await import(LAUNCHER_MODULE)) as { createProviderManager?: unknown };
  } catch (err) {
    throw new CliError('EUNAVAILABLE',
      `cloud access is not available in this build (${LAUNCHER_MODULE}: ${(err as Error).message})`);
  }
  if (typeof mod.createProviderManager !== 'function') {
    throw new CliError('EUNAVAILABLE', `cloud access is not available in this build (${LAUNCHER_MODULE} has no createProviderManager)`);
  }
  return mod.createProviderManager as CreateProviderManager;
}

/** A started manager for `provider`; the caller must stop() it. */
export async function startProviderManager(config: Config, provider: Provider): Promise<ProviderManager> {
  const create = await loadFactory();
  const manager = create(provider, { stateDir: config.stateDir });
  await manager.start();
  return manager;
}

/**
 * `nodepool delete --now`: what the launcher's NodeDeleter does, in the foreground, for a node
 * the caller has locked — mark it deleting, delete the server and wait until it is gone, then
 * remove the znode (which removes the lock with it).
 */
export async function deleteNodeNow(zk: ZooKeeper, provider: Provider, node: Node, ctx: CliContext): Promise<void> {
  const config = await ctx.loadConfig();
  const id = node.id ?? '';
  const fresh = (await zk.getNode(id)) ?? node;
  fresh.state = 'deleting';
  fresh.state_time = ctx.now();
  await zk.storeNode(fresh);
  if (!isCloudProvider(provider) || fresh.external_id === null) {
    // nothing to delete in a cloud: static hosts are re-registered by their launcher, the slot
    // of a metastatic node is freed by its launcher once the znode is gone
    await zk.deleteNode(fresh);
    return;
  }
  const manager = await startProviderManager(config, provider);
  try {
    ctx.log('INFO', 'nodepool.NodeDeleter', `Deleting server ${fresh.external_id} for node ${id}`);
    try {
      await manager.deleteServer(fresh.external_id);
      await manager.waitForServerDeletion(fresh.external_id, SERVER_DELETE_WAIT_MS);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    await zk.deleteNode(fresh);
  } finally {
    await manager.stop();
  }
}
