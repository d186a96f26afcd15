// The launcher benchmark of bench/launcher.ts, on the OpenStack driver: a real nodepool-launcher
// process with an OpenStack provider talks HTTP to the API simulator (in this process), while the
// shared Zuul-like client (bench/zuul-client.ts) drives it through ZooKeeper. Prints JSON:
// requests/s and latency for warm (min-ready) and cold (a server booted per request) requests,
// and the OpenStack API calls each node cost, by call.
//
//   node --import tsx test/openstack/bench.ts [--requests 300] [--cold-requests 100] [--concurrency 8]
//        [--rate 0.001] [--poll 0.2] [--boot-delay 0.05] [--floating-ips]
// Uses $NODEPOOL_TEST_ZK if set, else starts a private ZooKeeper with scripts/zk.sh.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { ZooKeeper } from '@nodepool-ts/core/zk';
import { configureLogging } from '@nodepool-ts/core/log';
import { drive } from '../../bench/zuul-client.js';
import { OpenStackSim, simCloudsYaml } from '../openstack-sim/index.js';
import { benchZooKeeper } from '../../bench/services.js';

configureLogging({ level: 'silent' });
const root = resolve(import.meta.dirname, '../..');

const { values: opts } = parseArgs({
  options: {
    requests: { type: 'string', default: '300' },
    'cold-requests': { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '8' },
    rate: { type: 'string', default: '0.001' },
    poll: { type: 'string', default: '0.2' },
    'boot-delay': { type: 'string', default: '0.05' },
    'floating-ips': { type: 'boolean', default: false },
  },
});
const N = Number(opts.requests);
const COLD = Number(opts['cold-requests']);
const C = Number(opts.concurrency);

const work = mkdtempSync(join(tmpdir(), 'np-osbench-'));
const zkService = benchZooKeeper(work);
const { host: zkHost, port: zkPort } = zkService;

const sim = new OpenStackSim({
  limits: { instances: 100_000, cores: -1, ram: -1, floatingIps: 100_000 },
  faults: { bootDelayMs: Number(opts['boot-delay']) * 1000, deleteDelayMs: 10 },
});
await sim.start();
writeFileSync(join(work, 'clouds.yaml'), simCloudsYaml(sim));

function config(chroot: string, minReady: number): string {
  return `zookeeper-servers:
  - host: ${zkHost}
    port: ${zkPort}
    chroot: ${chroot}
labels:
  - name: warm
    min-ready: ${minReady}
  - name: cold
    min-ready: 0
providers:
  - name: sim
    cloud: sim
    rate: ${opts.rate}
    cloud-images:
      - name: cirros
        image-name: cirros-0.6.2-x86_64-disk
    pools:
      - name: main
        max-servers: 100000
        networks: [${opts['floating-ips'] ? 'private' : 'public'}]
        host-key-checking: false
        labels:
          - name: warm
            cloud-image: cirros
            min-ram: 2048
          - name: cold
            cloud-image: cirros
            min-ram: 2048
`;
}

function startLauncher(cfg: string): ChildProcess {
  return spawn(process.execPath, [join(root, 'packages/launcher/bin/nodepool-launcher.js'), '-f', '-c', cfg,
    '-p', join(work, 'launcher.pid'), '--no-webapp', '--no-history'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...process.env, NODEPOOL_LOG_LEVEL: 'error', NODEPOOL_STATE_DIR: join(work, 'state'),
      OS_CLIENT_CONFIG_FILE: join(work, 'clouds.yaml'), NODEPOOL_OPENSTACK_POLL_INTERVAL: String(opts.poll),
    },
  });
}

async function waitFor(fn: () => Promise<boolean> | boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timeout (${lastSettle})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every used node deleted and its server gone: the cloud holds exactly the nodes ZooKeeper has. */
let lastSettle = '';
async function settled(): Promise<boolean> {
  const nodes = await zk.getNodes();
  const states: Record<string, number> = {};
  for (const n of nodes) states[n.state] = (states[n.state] ?? 0) + 1;
  lastSettle = `servers ${sim.state.servers.size}, nodes ${JSON.stringify(states)}`;
  return nodes.every((n) => n.state === 'ready') && sim.state.servers.size === nodes.length;
}

/**
 * Waits (60 s at most) for every used node to be gone; null when settled, else what is left, so
 * a launcher that leaves nodes behind shows in the figures instead of hanging the benchmark.
 */
async function settle(): Promise<string | null> {
  try {
    await waitFor(settled, 60_000);
    return null;
  } catch {
    return lastSettle;
  }
}

/** API calls per node over a phase in which `nodes` servers were created and deleted. */
function perNode(nodes: number): Record<string, unknown> {
  const by: Record<string, number> = {};
  for (const [k, v] of sim.counters) by[k] = Math.round((v / nodes) * 100) / 100;
  return { total: Math.round((sim.calls() / nodes) * 100) / 100, by_call: by };
}

const result: Record<string, unknown> = {
  machine: { cores: cpus().length, node: process.version },
  settings: { rate_s: Number(opts.rate), poll_s: Number(opts.poll), boot_delay_s: Number(opts['boot-delay']), floating_ips: opts['floating-ips'] },
};
const chroot = `/osbench-${randomBytes(4).toString('hex')}`;
const cfg = join(work, 'nodepool.yaml');
writeFileSync(cfg, config(chroot, C * 4));
const zk = new ZooKeeper({ servers: [{ host: zkHost, port: Number(zkPort), chroot }], connectTimeoutMs: 10_000 });
await zk.connect();
const launcher = startLauncher(cfg);
try {
  const readyWarm = async (): Promise<boolean> =>
    (await zk.getNodes()).filter((n) => n.state === 'ready' && n.allocated_to === null).length >= C * 4;
  await waitFor(readyWarm, 120_000);
  await drive(zk, 'warm', Math.min(50, N), C); // warm-up
  await waitFor(readyWarm, 120_000);
  sim.resetCounters();
  result.warm = await drive(zk, 'warm', N, C);
  await waitFor(readyWarm, 120_000); // every used node replaced ...
  result.warm_unsettled = await settle(); // ... and deleted
  result.warm_api_calls_per_node = perNode(N);

  sim.resetCounters();
  result.cold = await drive(zk, 'cold', COLD, C);
  result.cold_unsettled = await settle(); // cold servers deleted
  result.cold_api_calls_per_node = perNode(COLD);
} finally {
  launcher.kill('SIGINT');
  await new Promise((r) => launcher.once('exit', r));
  await zk.deleteRecursive('/nodepool').catch(() => undefined);
  await zk.close();
  await sim.stop();
  zkService.stop();
  rmSync(work, { recursive: true, force: true });
}
console.log(JSON.stringify(result, null, 2));
process.exit(0);
