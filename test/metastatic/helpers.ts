// Metastatic-driver scenarios: a launcher with a fake cloud (the backing provider) and a
// metastatic provider on top, Zuul's use of a node, and the driver's view of its backing nodes.
import { newNodeRequest, type Node, type NodeRequest } from '@nodepool-ts/core/model';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import { Launcher, type MetastaticManager } from '@nodepool-ts/launcher';
import { waitFor, type TestEnv } from '../helpers/harness.js';

export const OWNER = 'NodePool:metastatic:meta-provider';

/**
 * After Nodepool's fixture (metastatic.yaml): a fake cloud offering the backing labels and a
 * metastatic provider whose labels carve them up.
 */
export function metastaticYaml(env: TestEnv, opts: { extraLabels?: string } = {}): string {
  return `${env.zkYaml}
labels:
  - name: backing-label
  - name: user-label
  - name: backing-label-age
  - name: user-label-age
  - name: backing-label-min-retention
  - name: user-label-min-retention
  - name: backing-label-none
  - name: user-label-none
providers:
  - name: fake-provider
    driver: fake
    rate: 0.001
    state-file: fake-cloud.json
    cloud-images:
      - name: fake-image
    pools:
      - name: main
        max-servers: 96
        node-attributes:
          backattr: back
          testattr: backing
        labels:
          - name: backing-label
            cloud-image: fake-image
            min-ram: 8192
          - name: backing-label-age
            cloud-image: fake-image
            min-ram: 8192
          - name: backing-label-min-retention
            cloud-image: fake-image
            min-ram: 8192
      # a pool that declines every request (max-servers 0): its label's backing requests fail
      - name: disabled
        max-servers: 0
        labels:
          - name: backing-label-none
            cloud-image: fake-image
            min-ram: 8192
  - name: meta-provider
    driver: metastatic
    pools:
      - name: main
        max-servers: 10
        priority: 1
        host-key-checking: true
        node-attributes:
          metaattr: meta
          testattr: metastatic
        labels:
          - name: user-label
            backing-label: backing-label
            max-parallel-jobs: 2
            grace-time: 1
            max-age: 300
          - name: user-label-age
            backing-label: backing-label-age
            max-parallel-jobs: 2
            grace-time: 1
            max-age: 3
          - name: user-label-min-retention
            backing-label: backing-label-min-retention
            grace-time: 0
            min-retention-time: 4
          - name: user-label-none
            backing-label: backing-label-none
${opts.extraLabels ?? ''}`;
}

export async function startLauncher(configFile: string, cleanups: (() => Promise<void> | void)[]): Promise<Launcher> {
  const l = new Launcher({ configFile, hostname: 'test', watchIntervalMs: 100, cleanupIntervalMs: 60_000, record: false });
  await l.start();
  cleanups.push(() => l.stop());
  return l;
}

export function metaManager(l: Launcher): MetastaticManager {
  const m = l.manager('meta-provider');
  if (m === null || m.kind !== 'metastatic') throw new Error('no metastatic provider meta-provider');
  return m;
}

export async function waitDone(zk: ZooKeeper, id: string, timeoutMs = 20_000): Promise<NodeRequest> {
  return waitFor(`request ${id} done`, async () => {
    const r = await zk.getNodeRequest(id);
    return r && (r.state === 'fulfilled' || r.state === 'failed') ? r : null;
  }, timeoutMs);
}

/** What Zuul holds of a node it took: the locked node, to be returned (used) later. */
export interface Taken {
  node: Node;
  /** mark it used and unlock it, as Zuul does at the end of a job */
  release(): Promise<void>;
}

/**
 * Zuul's part: request one node of `label`, wait for it, lock it, delete the request and mark the
 * node in-use. `keep: false` leaves the node unlocked and ready (the request deleted unused).
 */
export async function take(zk: ZooKeeper, label: string, opts: { keep?: boolean } = {}): Promise<Taken> {
  const id = await zk.submitNodeRequest(newNodeRequest({ node_types: [label], requestor: 'zuul-test' }), '200');
  const req = await waitDone(zk, id);
  if (req.state !== 'fulfilled') throw new Error(`request ${id} ${req.state}`);
  const node = await zk.getNode(req.nodes[0] ?? '');
  if (node === null) throw new Error(`node ${req.nodes[0] ?? ''} of request ${id} is missing`);
  if (opts.keep === false) {
    await zk.deleteNodeRequest(id);
    return { node, release: async () => undefined };
  }
  if (!(await zk.lockNode(node, { blocking: true, timeoutMs: 10_000 }))) throw new Error(`could not lock node ${node.id ?? ''}`);
  await zk.deleteNodeRequest(id);
  const taken: Node = { ...node, state: 'in-use', state_time: Date.now() / 1000 };
  zk.transferNodeLock(node, taken);
  await zk.storeNode(taken);
  return {
    node,
    release: async () => {
      taken.state = 'used';
      taken.state_time = Date.now() / 1000;
      await zk.storeNode(taken);
      await zk.unlockNode(taken);
    },
  };
}

export async function waitGone(zk: ZooKeeper, id: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(`node ${id} deleted`, async () => (await zk.getNodeData(id)) === null, timeoutMs);
}

/** Every node id, sorted (Nodepool's tests compare this list). */
export async function nodeIds(zk: ZooKeeper): Promise<string[]> {
  return (await zk.getNodes()).map((n) => n.id ?? '').sort();
}

export function backingOf(node: Node): string | null {
  const dd = node.extra['driver_data'] as { backing_node?: unknown } | undefined;
  return typeof dd?.backing_node === 'string' ? dd.backing_node : null;
}
