// Static-driver scenarios: nodepool.yaml for static pools of real sshd hosts, a launcher per
// test, Zuul's use of a node, and the driver's view of its hosts.
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import type { Node, NodeRequest } from '@nodepool-ts/core/model';
import { newNodeRequest } from '@nodepool-ts/core/model';
import { Launcher } from '@nodepool-ts/launcher';
import type { StaticNodeManager } from '@nodepool-ts/driver-static';
import { waitFor, type TestEnv } from '../helpers/harness.js';
import { currentUser, type Sshd } from '../../packages/drivers/static/test/sshd.js';

export interface HostSpec {
  sshd: Sshd;
  labels: string[];
  maxParallelJobs?: number;
  /** default: every key the server has; null: no host-key line */
  hostKey?: string[] | null;
  username?: string;
  connectionType?: string;
  timeout?: number;
  /** default: the sshd's address */
  name?: string;
  port?: number;
  /** more keys of the node, each `key: value` */
  more?: string[];
}

export interface StaticYaml {
  labels: { name: string; readyScript?: string }[];
  pools: { name: string; hosts: HostSpec[]; extra?: string }[];
  provider?: string;
  top?: string;
}

export function hostYaml(h: HostSpec): string {
  const keys = h.hostKey === undefined ? h.sshd.hostKeys : h.hostKey;
  const lines = [
    `          - name: ${JSON.stringify(h.name ?? h.sshd.address)}`,
    `            labels: [${h.labels.join(', ')}]`,
    `            username: ${h.username ?? currentUser()}`,
    `            connection-port: ${h.port ?? h.sshd.port}`,
    `            timeout: ${h.timeout ?? 5}`,
  ];
  if (h.connectionType) lines.push(`            connection-type: ${h.connectionType}`);
  if (h.maxParallelJobs !== undefined) lines.push(`            max-parallel-jobs: ${h.maxParallelJobs}`);
  for (const m of h.more ?? []) lines.push(`            ${m}`);
  if (keys !== null && keys.length > 0) {
    lines.push('            host-key:');
    for (const k of keys) lines.push(`              - ${JSON.stringify(k)}`);
  }
  return lines.join('\n');
}

export function staticYaml(env: TestEnv, spec: StaticYaml): string {
  const labels = spec.labels.map((l) => `  - name: ${l.name}${l.readyScript ? `\n    ready-script: ${l.readyScript}` : ''}`).join('\n');
  const pools = spec.pools.map((p) => `      - name: ${p.name}\n${p.extra ?? ''}        nodes:\n${p.hosts.map(hostYaml).join('\n')}`).join('\n');
  return `${env.zkYaml}
${spec.top ?? ''}
labels:
${labels}
providers:
  - name: ${spec.provider ?? 'static-provider'}
    driver: static
    pools:
${pools}
`;
}

export function staticManager(l: Launcher, provider = 'static-provider'): StaticNodeManager {
  const m = l.manager(provider);
  if (m === null || m.kind !== 'static') throw new Error(`no static provider ${provider}`);
  return m as unknown as StaticNodeManager;
}

export async function submit(zk: ZooKeeper, nodeTypes: string[], extra: Partial<NodeRequest> = {}): Promise<string> {
  return zk.submitNodeRequest(newNodeRequest({ node_types: nodeTypes, requestor: 'static-test', ...extra }), '200');
}

export async function waitState(zk: ZooKeeper, id: string, states: string[], timeoutMs = 20_000): Promise<NodeRequest> {
  return waitFor(`request ${id} in ${states.join('/')}`, async () => {
    const r = await zk.getNodeRequest(id);
    return r && states.includes(r.state) ? r : null;
  }, timeoutMs);
}

/** The nodes of a provider (uncached). */
export async function providerNodes(zk: ZooKeeper, provider = 'static-provider'): Promise<Node[]> {
  return (await zk.getNodes()).filter((n) => n.provider === provider);
}

export async function readyOf(zk: ZooKeeper, host: string, provider = 'static-provider'): Promise<Node[]> {
  return (await providerNodes(zk, provider)).filter((n) => n.hostname === host && n.state === 'ready');
}

/** Zuul's part: lock the node, mark it in-use; `finish()` marks it used and unlocks. */
export async function useNode(zk: ZooKeeper, id: string): Promise<{ finish(): Promise<void> }> {
  const node = await zk.getNode(id);
  if (node === null) throw new Error(`node ${id} vanished`);
  if (!(await zk.lockNode(node, { blocking: true, timeoutMs: 10_000 }))) throw new Error(`could not lock ${id}`);
  node.state = 'in-use';
  node.state_time = Date.now() / 1000;
  await zk.storeNode(node);
  return {
    async finish() {
      node.state = 'used';
      node.state_time = Date.now() / 1000;
      await zk.storeNode(node);
      await zk.unlockNode(node);
    },
  };
}

export async function startLauncher(configFile: string, cleanups: (() => Promise<void> | void)[], hostname = 'static-test',
  beforeStart?: (l: Launcher) => void): Promise<Launcher> {
  const l = new Launcher({ configFile, hostname, watchIntervalMs: 100, cleanupIntervalMs: 3_600_000, webapp: false });
  // (listeners attached here see what the start itself does: the first host checks)
  beforeStart?.(l);
  await l.start();
  cleanups.push(() => l.stop());
  return l;
}
