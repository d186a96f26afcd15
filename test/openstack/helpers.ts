// Shared by the OpenStack end-to-end suites: a simulator with a loopback network (reachable
// addresses, so host keys are really scanned), a nodepool.yaml for it, and Zuul-like request
// helpers against the real ZooKeeper.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { newNodeRequest, type Node, type NodeRequest } from '@nodepool-ts/core/model';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import { OpenStackSim, simCloudsYaml, type SimOptions } from '../openstack-sim/index.js';
import { testEnv, waitFor, type TestEnv } from '../helpers/harness.js';

export const CIRROS = 'cirros-0.6.2-x86_64-disk';

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const a = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return a !== null && typeof a === 'object' ? a.port : 0;
}

export async function startSim(opts: SimOptions = {}): Promise<OpenStackSim> {
  const sim = new OpenStackSim({
    networks: [
      { name: 'loopback', cidr: '127.42.0.0/16' },
      { name: 'private', cidr: '10.1.0.0/16' },
      { name: 'public', cidr: '172.24.4.0/24', external: true },
    ],
    limits: { instances: 50, cores: 200, ram: 1_000_000 },
    faults: { bootDelayMs: 30, deleteDelayMs: 30 },
    ...opts,
  });
  await sim.start();
  return sim;
}

/**
 * nodepool.yaml with provider `sim`: pool `main` on the loopback network with host-key checking
 * (label `small`, a cloud image), pool `fip` on a private network with floating IPs (label
 * `fip`), pool `noip` without floating IPs (label `noip`), plus a diskimage label `built`.
 */
export interface ConfigOverrides {
  bootTimeout?: number;
  launchTimeout?: number;
  launchRetries?: number;
  provider?: string;
  mainPool?: string;
  fipPool?: string;
  /** top-level YAML (images-dir, build-log-dir, ...) */
  top?: string;
  /** provider diskimage `meta` lines, indented for the entry */
  diskimageMeta?: string;
}

export function openstackConfig(env: TestEnv, sim: OpenStackSim, sshPort: number, over: ConfigOverrides = {}): string {
  writeFileSync(join(env.dir, 'clouds.yaml'), simCloudsYaml(sim));
  return `${env.zkYaml}
${over.top ?? ''}
labels:
  - name: small
    min-ready: 0
  - name: fip
    min-ready: 0
  - name: noip
    min-ready: 0
  - name: built
    min-ready: 0
diskimages:
  - name: ubuntu
    formats: [qcow2]
    elements: [ubuntu-minimal, vm]
providers:
  - name: sim
    cloud: sim
    rate: 0.001
    boot-timeout: ${over.bootTimeout ?? 2}
    launch-timeout: ${over.launchTimeout ?? 10}
    launch-retries: ${over.launchRetries ?? 3}
    clean-floating-ips: true
${over.provider ?? ''}
    diskimages:
      - name: ubuntu
        connection-port: ${sshPort}
${over.diskimageMeta ?? ''}
    cloud-images:
      - name: cirros
        image-name: ${CIRROS}
        username: cirros
        connection-port: ${sshPort}
    pools:
      - name: main
        max-servers: 10
        networks: [loopback]
        host-key-checking: true
${over.mainPool ?? ''}
        labels:
          - name: small
            cloud-image: cirros
            min-ram: 2048
            console-log: true
            instance-properties:
              team: infra
          - name: built
            diskimage: ubuntu
            flavor-name: m1.medium
      - name: fip
        max-servers: 10
        networks: [private]
        host-key-checking: false
${over.fipPool ?? ''}
        labels:
          - name: fip
            cloud-image: cirros
            min-ram: 2048
      - name: noip
        max-servers: 10
        networks: [private]
        auto-floating-ip: false
        host-key-checking: false
        labels:
          - name: noip
            cloud-image: cirros
            min-ram: 512
`;
}

export async function submit(zk: ZooKeeper, nodeTypes: string[]): Promise<string> {
  return zk.submitNodeRequest(newNodeRequest({ node_types: nodeTypes, requestor: 'openstack-e2e' }), '100');
}

export async function waitDone(zk: ZooKeeper, id: string, timeoutMs = 30_000): Promise<NodeRequest> {
  return waitFor(`request ${id} done`, async () => {
    const r = await zk.getNodeRequest(id);
    return r && (r.state === 'fulfilled' || r.state === 'failed') ? r : null;
  }, timeoutMs);
}

/** What Zuul does when a job finished: lock, in-use, used, unlock, drop the request. */
export async function release(zk: ZooKeeper, req: NodeRequest): Promise<Node[]> {
  const nodes: Node[] = [];
  for (const id of req.nodes) {
    const node = await zk.getNode(id);
    if (!node) continue;
    await zk.lockNode(node, { blocking: true, timeoutMs: 5000 });
    node.state = 'used';
    await zk.storeNode(node);
    await zk.unlockNode(node);
    nodes.push(node);
  }
  await zk.deleteNodeRequest(req.id ?? '');
  return nodes;
}

/**
 * A simulator and a nodepool.yaml for the builder: an images dir and a build log dir in a fresh
 * test env (the builder tests' common start).
 */
export async function builderSetup(over: ConfigOverrides = {}): Promise<{
  sshPort: number; sim: OpenStackSim; env: TestEnv; imagesDir: string; config: string;
}> {
  const sshPort = await freePort();
  const sim = await startSim({ sshPort });
  const env = testEnv();
  const imagesDir = join(env.dir, 'images');
  mkdirSync(imagesDir);
  const config = env.write('nodepool.yaml', openstackConfig(env, sim, sshPort, {
    top: `images-dir: ${imagesDir}\nbuild-log-dir: ${join(env.dir, 'logs')}\n`,
    ...over,
  }));
  return { sshPort, sim, env, imagesDir, config };
}
