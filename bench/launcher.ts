// Launcher benchmark: drives a real nodepool-launcher process through ZooKeeper exactly as Zuul
// does (submit an ephemeral request, watch it, lock the nodes, delete the request, mark the nodes
// in-use then used, unlock) and prints JSON figures:
//   warm: requests served from the min-ready pool; cold: a node launched per request;
//   latency p50/p95/p99 from request creation to `fulfilled` seen by the client;
//   launcher RSS; `nodepool list` wall time at 1k and 10k nodes; launcher RSS with 10k nodes;
//   per request: CPU ms of the launcher, the ZooKeeper server and this client (figures that hold
//   on a loaded machine, unlike requests/s) and ZooKeeper packets received.
//
//   NODEPOOL_ZK_OPSTATS=/tmp/ops npm run bench ...   also writes /tmp/ops.<pid> per process:
//   every ZooKeeper operation counted by kind and path pattern (which calls a change saves).
//
//   npm run bench                         (defaults)
//   npm run bench -- --requests 2000 --concurrency 16
//   npm run bench -- --db compare --skip-list   history off vs recorded in MariaDB, in alternating
//                                               rounds: recording_overhead_pct (warm requests/s)
//                                               and recording_cpu_ms_per_request (launcher + MariaDB);
//                                               --against sqlite: vs the embedded SQLite instead
//   npm run bench -- --zk-tls                  the same over TLS (a TLS-only ZooKeeper, zookeeper-tls)
// Uses $NODEPOOL_TEST_ZK if set, else starts a private ZooKeeper with scripts/zk.sh.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { newNode, nodeToData } from '@nodepool-ts/core/model';
import { paths, ZooKeeper, mapLimit } from '@nodepool-ts/core/zk';
import { configureLogging } from '@nodepool-ts/core/log';
import { drive } from './zuul-client.js';
import { startLauncher, stopLauncher } from './launcher-process.js';
import { benchZooKeeper, cpuSeconds, zkMonitor } from './services.js';

configureLogging({ level: 'silent' });
const root = resolve(import.meta.dirname, '..');

const { values: opts } = parseArgs({
  options: {
    requests: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '8' },
    // warm requests run one at a time after the throughput run: latency without queueing
    'latency-requests': { type: 'string', default: '300' },
    'cold-requests': { type: 'string', default: '300' },
    'list-sizes': { type: 'string', default: '1000,10000' },
    // history recording: sqlite (embedded default), mariadb, off, or compare (off vs mariadb)
    db: { type: 'string', default: 'sqlite' },
    // compare: rounds of off and mariadb in alternating order (off, mariadb, mariadb, off, ...),
    // so that neither the ZooKeeper server's warm-up nor a change of load favours one mode
    // (default 2); another mode: runs of it one after the other, in `runs` (default 1)
    rounds: { type: 'string' },
    // compare: the recorded mode compared with off (mariadb, or sqlite: the embedded default)
    against: { type: 'string', default: 'mariadb' },
    'skip-list': { type: 'boolean', default: false },
    'list-only': { type: 'boolean', default: false },
    // every client (launcher, this Zuul-like client, the CLI) talks TLS to a TLS-only ZooKeeper
    'zk-tls': { type: 'boolean', default: false },
    // the benchmark's MariaDB at this nice level (0-19): its work yielding to the launcher's and
    // ZooKeeper's, as it does from a host of its own; default 0 (same priority as the rest)
    'mariadb-nice': { type: 'string', default: '0' },
  },
});
const N = Number(opts.requests);
const C = Number(opts.concurrency);
const COLD = Number(opts['cold-requests']);

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

const work = mkdtempSync(join(tmpdir(), 'np-bench-'));
const zkService = benchZooKeeper(work, opts['zk-tls']);
const { host: zkHost, port: zkPort, monitorPort, tls } = zkService;

function config(chroot: string, minReady: number, extra = ''): string {
  return `zookeeper-servers:
  - host: ${zkHost}
    port: ${zkPort}
    chroot: ${chroot}
${tls ? `zookeeper-tls:\n  cert: ${tls.cert}\n  key: ${tls.key}\n  ca: ${tls.ca}` : ''}
labels:
  - name: warm
    min-ready: ${minReady}
  - name: cold
    min-ready: 0
${extra}
providers:
  - name: fake-provider
    driver: fake
    rate: 0.00001
    cloud-images:
      - name: fake-image
    pools:
      - name: main
        max-servers: 100000
        labels:
          - name: warm
            cloud-image: fake-image
            min-ram: 8192
          - name: cold
            cloud-image: fake-image
            min-ram: 8192
`;
}

function startLauncherFor(cfg: string, history = true): ChildProcess {
  return startLauncher(cfg, { stateDir: join(work, 'state'), runDir: work, history });
}

/**
 * drive() plus the CPU each process spent per request (ms): the launcher, the ZooKeeper server
 * (when this benchmark started it) and this Zuul-like client. Unlike requests/s these figures
 * hardly move with the load other work puts on the machine.
 */
async function measuredDrive(zk: ZooKeeper, launcher: ChildProcess, label: string, total: number): Promise<Record<string, unknown>> {
  const procs: [string, number][] = [['launcher', launcher.pid ?? 0]];
  if (zkService.pid !== null) procs.push(['zookeeper', zkService.pid]);
  if (mariadbPid !== null) procs.push(['mariadb', mariadbPid]);
  const before = procs.map(([, pid]) => cpuSeconds(pid));
  const mntr0 = await zkMonitor(zkHost, monitorPort);
  const client0 = process.cpuUsage();
  const r = await drive(zk, label, total, C);
  const client = process.cpuUsage(client0);
  const mntr1 = await zkMonitor(zkHost, monitorPort);
  const perReq = (secs: number): number => Math.round((secs * 1000 / total) * 100) / 100;
  const cpu: Record<string, number> = {};
  procs.forEach(([name, pid], i) => { cpu[name] = perReq(cpuSeconds(pid) - (before[i] ?? NaN)); });
  cpu.client = perReq((client.user + client.system) / 1e6);
  // ZooKeeper operations per request, every client (launcher and this one) together
  const ops = Math.round((((mntr1.zk_packets_received ?? NaN) - (mntr0.zk_packets_received ?? NaN)) / total) * 10) / 10;
  return { ...r, cpu_ms_per_request: cpu, zookeeper_packets_per_request: ops };
}

/** the benchmark's MariaDB server (its CPU time is counted with the launcher's) */
let mariadbPid: number | null = null;

async function waitFor(fn: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error('timeout');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function connect(chroot: string): Promise<ZooKeeper> {
  const zk = new ZooKeeper({ servers: [{ host: zkHost, port: Number(zkPort), chroot }], connectTimeoutMs: 10_000, tls });
  await zk.connect();
  return zk;
}

async function seedNodes(zk: ZooKeeper, count: number): Promise<void> {
  await zk.mkdirp(paths.nodesRoot);
  await mapLimit(Array.from({ length: count }, (_, i) => i), 64, async (i) => {
    const n = newNode({
      state: 'ready', provider: 'bench-elsewhere', pool: 'main', type: ['warm'], external_id: randomBytes(16).toString('hex'),
      public_ipv4: `198.18.${(i >> 8) & 255}.${i & 255}`, hostname: `warm-bench-${i}`, launcher: 'bench',
    });
    await zk.create(paths.nodePrefix, nodeToData(n), 'persistent_sequential');
  });
}

const result: Record<string, unknown> = { machine: { cores: (await import('node:os')).cpus().length, node: process.version } };
try {
  // ---- warm and cold ----
  if (!opts['list-only']) {
    const mode = opts.db ?? 'sqlite';
    let mariadbUri: string | null = null;
    const against = opts.against === 'sqlite' ? 'sqlite' : 'mariadb';
    if (mode === 'mariadb' || (mode === 'compare' && against === 'mariadb')) {
      const r = spawnSync('bash', [join(root, 'scripts/mariadb.sh'), 'start', join(work, 'mariadb')], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`could not start MariaDB: ${r.stderr}`);
      mariadbUri = r.stdout.trim().split('\n').pop() ?? null;
      mariadbPid = Number(readFileSync(join(work, 'mariadb', 'mariadb.pid'), 'utf8').trim()) || null;
      const nice = Number(opts['mariadb-nice']);
      if (mariadbPid !== null && nice > 0) {
        // every thread: Linux keeps a nice level per thread, and InnoDB's were started already
        const tids = readdirSync(`/proc/${mariadbPid}/task`);
        const rn = spawnSync('renice', ['-n', String(nice), '-p', ...tids], { encoding: 'utf8' });
        if (rn.status !== 0) throw new Error(`could not renice MariaDB: ${rn.stderr}`);
        result.mariadb_nice = nice;
      }
    }
    const off: [string, boolean, string] = ['off', false, ''];
    const rec: [string, boolean, string] = against === 'mariadb' ? ['mariadb', true, `dburi: '${mariadbUri}'`] : ['sqlite', true, ''];
    const runs: [string, boolean, string][] = mode === 'compare'
      ? Array.from({ length: Math.max(1, Number(opts.rounds ?? 2)) }, (_, i) => (i % 2 === 0 ? [off, rec] : [rec, off])).flat()
      : Array.from({ length: Math.max(1, Number(opts.rounds ?? 1)) }, () => [mode, mode !== 'off', mode === 'mariadb' ? `dburi: '${mariadbUri}'` : '']);
    const byMode: Record<string, Record<string, unknown>[]> = {};
    let first = true;
    for (const [name, history, extra] of runs) {
      const chroot = `/bench-${randomBytes(4).toString('hex')}`;
      const cfg = join(work, `bench-${name}.yaml`);
      writeFileSync(cfg, config(chroot, C * 4, extra));
      const zk = await connect(chroot);
      const launcher = startLauncherFor(cfg, history);
      await waitFor(async () => (await zk.getNodes()).filter((n) => n.state === 'ready').length >= C * 4, 60_000);
      // warm-up; the first run also warms the ZooKeeper server's JIT up (it ran 2-4x the CPU
      // per request in a first run of 1000 requests, which favoured whichever mode came second)
      await drive(zk, 'warm', first ? Math.max(1000, N) : Math.min(100, N), C);
      first = false;
      await waitFor(async () => (await zk.getNodes()).filter((n) => n.state === 'ready' && n.allocated_to === null).length >= C * 4, 60_000);
      const r: Record<string, unknown> = { history: name };
      r.warm = await measuredDrive(zk, launcher, 'warm', N);
      r.launcher_rss_mb_after_warm = rssMb(launcher.pid ?? 0);
      const single = Number(opts['latency-requests']);
      if (single > 0) {
        await waitFor(async () => (await zk.getNodes()).filter((n) => n.state === 'ready' && n.allocated_to === null).length >= C * 4, 60_000);
        r.warm_one_at_a_time = await drive(zk, 'warm', single, 1);
      }
      r.cold = await measuredDrive(zk, launcher, 'cold', COLD);
      r.launcher_rss_mb_after_cold = rssMb(launcher.pid ?? 0);
      await stopLauncher(launcher);
      await zk.deleteRecursive('/nodepool').catch(() => undefined);
      await zk.close();
      (byMode[name] ??= []).push(r);
    }
    if (mode === 'compare') {
      const warm = (m: string, f: (w: { requests_per_s: number; cpu_ms_per_request: Record<string, number> }) => number): number[] =>
        (byMode[m] ?? []).map((r) => f(r.warm as { requests_per_s: number; cpu_ms_per_request: Record<string, number> }));
      const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
      const pct = (a: number, b: number): number => Math.round((1 - a / b) * 1000) / 10;
      result.history = byMode;
      // warm requests/s, mean of the rounds; and per round (each pair of neighbouring runs)
      result.recording_overhead_pct = pct(mean(warm(against, (w) => w.requests_per_s)), mean(warm('off', (w) => w.requests_per_s)));
      const on = warm(against, (w) => w.requests_per_s);
      const byRound = warm('off', (w) => w.requests_per_s).map((o, i) => pct(on[i] ?? NaN, o));
      result.recording_overhead_pct_by_round = byRound;
      // how far the mean of the rounds can be trusted: rounds scatter by ±10-15 % on this VM
      if (byRound.length > 1) {
        const m = mean(byRound);
        const sd = Math.sqrt(byRound.reduce((a, x) => a + (x - m) ** 2, 0) / (byRound.length - 1));
        result.recording_overhead_pct_stderr = Math.round((sd / Math.sqrt(byRound.length)) * 10) / 10;
      }
      // what recording costs in CPU per warm request: the launcher's extra time plus MariaDB's
      const cpu = (m: string, p: string): number => mean(warm(m, (w) => w.cpu_ms_per_request[p] ?? NaN));
      result.recording_cpu_ms_per_request = {
        launcher: Math.round((cpu(against, 'launcher') - cpu('off', 'launcher')) * 100) / 100,
        ...(against === 'mariadb' ? { mariadb: Math.round(cpu('mariadb', 'mariadb') * 100) / 100 } : {}),
      };
    } else {
      const all = byMode[mode] ?? [];
      if (all.length === 1) Object.assign(result, all[0]);
      else result.runs = all;
    }
    if (mariadbUri) spawnSync('bash', [join(root, 'scripts/mariadb.sh'), 'stop', join(work, 'mariadb')]);
  }
  // ---- nodepool list and launcher RSS at scale ----
  if (!opts['skip-list']) {
    const sizes = (opts['list-sizes'] ?? '').split(',').map(Number).filter((n) => n > 0);
    const list: Record<string, unknown> = {};
    for (const size of sizes) {
      const chroot = `/bench-list-${randomBytes(4).toString('hex')}`;
      const cfg = join(work, `list-${size}.yaml`);
      writeFileSync(cfg, config(chroot, 0));
      const zk = await connect(chroot);
      await seedNodes(zk, size);
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        // BENCH_CLI_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR": profile the CLI as BENCH_LAUNCHER_NODE_ARGS does the launcher
        const nodeArgs = (process.env.BENCH_CLI_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
        const r = spawnSync(process.execPath, [...nodeArgs, join(root, 'packages/cli/bin/nodepool.js'), '-c', cfg, 'list'], { encoding: 'utf8', maxBuffer: 1 << 30 });
        times.push(performance.now() - t0);
        if (r.status !== 0) throw new Error(`nodepool list failed: ${r.stderr}`);
        const rows = r.stdout.split('\n').filter((l) => l.startsWith('| 0')).length;
        if (rows !== size) throw new Error(`nodepool list printed ${rows} rows, expected ${size}`);
      }
      times.sort((a, b) => a - b);
      const entry: Record<string, number> = { list_wall_ms_median: Math.round(times[1] ?? NaN) };
      const launcher = startLauncherFor(cfg);
      await new Promise((r) => setTimeout(r, 4000));
      entry.launcher_rss_mb = rssMb(launcher.pid ?? 0);
      await stopLauncher(launcher);
      list[String(size)] = entry;
      await zk.deleteRecursive('/nodepool').catch(() => undefined);
      await zk.close();
    }
    result.list = list;
  }
} finally {
  zkService.stop();
  rmSync(work, { recursive: true, force: true });
}
console.log(JSON.stringify(result, null, 2));
process.exit(0);
