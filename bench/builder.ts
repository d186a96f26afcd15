// Builder benchmark (prints JSON figures, then a summary):
//   overhead  the same real disk-image-create build (debian-minimal + nodepool-base, raw, bookworm
//             from this machine's apt mirror) run by hand (`disk-image-create ... > log 2>&1`) and
//             by nodepool-builder, alternating: wall time of each, the CPU time of DIB and all its
//             descendants (bash `times` in a tiny wrapper used on both sides), the CPU the builder
//             process itself spent meanwhile (streaming the log, parsing progress, writing progress
//             znodes) and how long DIB's output ever waited for the builder (back-pressure).
//             Target: <= 5 %. On a shared machine wall time is dominated by other load; the CPU
//             figures and the stall time are what the builder adds.
//   upload    throughput of uploads to the fake cloud: the cloud reading and hashing the file
//             (MB/s, what an upload without checksum files costs) and the builder's whole upload
//             path (build ready -> upload ready) for an image of --size-mb.
//
//   node --import tsx bench/builder.ts                  both (the real build needs DIB + sudo)
//   node --import tsx bench/builder.ts --skip-real      upload figures only
//   node --import tsx bench/builder.ts --runs 2         alternate hand/builder runs twice
// Uses $NODEPOOL_TEST_ZK if set, else starts a private ZooKeeper with scripts/zk.sh. The DIB cache
// ($NODEPOOL_TEST_DIB_CACHE or ~/.cache/image-create) is warmed by a first build when cold, so
// both sides compare warm builds.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '@nodepool-ts/core/config';
import { configureLogging } from '@nodepool-ts/core/log';
import { ZooKeeper } from '@nodepool-ts/core/zk';
import { Builder, dibCommand, dibEnvironment, resolveExecutable, SHIPPED_ELEMENTS_DIR } from '@nodepool-ts/builder';
import { FakeProviderManager } from '@nodepool-ts/driver-fake';
import { benchZooKeeper } from './services.js';

configureLogging({ level: 'silent' });
const root = resolve(import.meta.dirname, '..');

const { values: opts } = parseArgs({
  options: {
    'skip-real': { type: 'boolean', default: false },
    runs: { type: 'string', default: '1' },
    'size-mb': { type: 'string', default: '1024' },
  },
});
const RUNS = Math.max(1, Number(opts.runs));
const SIZE_MB = Math.max(1, Number(opts['size-mb']));

const work = mkdtempSync(join(tmpdir(), 'np-bench-builder-'));
const zkService = benchZooKeeper(work);
const { host: zkHost, port: zkPort } = zkService;

function fakeCloud(stateFile: string, format: string): FakeProviderManager {
  return new FakeProviderManager({
    driver: 'fake', name: 'fake-provider', maxConcurrency: -1, priority: null, postUploadHook: null, imageUploadTimeout: 3600, launchCircuitBreaker: null, cloud: 'bench', regionName: null, bootTimeout: 60,
    launchTimeout: 3600, launchRetries: 3, rate: 0.0001, hostnameFormat: '{label.name}-{provider.name}-{node.id}',
    imageNameFormat: '{image_name}-{timestamp}', imageFormat: format, cloudConfig: null, diskimages: [], cloudImages: [],
    pools: [], azs: ['az1'], quota: { instances: Infinity, cores: Infinity, ram: Infinity },
    faults: { bootDelay: 0, createFailureRate: 0, errorRate: 0, apiErrorRate: 0, quotaExceeded: false, deleteFailureRate: 0, deleteDelay: 0 },
    stateFile, flavors: [],
  });
}

interface Scenario {
  dir: string;
  configFile: string;
  chroot: string;
  env: NodeJS.ProcessEnv;
}

function scenario(name: string, diskimage: string[], providerFormat: string): Scenario {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const chroot = `/bench-${randomBytes(5).toString('hex')}`;
  const clouds = join(dir, 'clouds.yaml');
  writeFileSync(clouds, `clouds:\n  bench:\n    image_format: ${providerFormat}\n`);
  const configFile = join(dir, 'nodepool.yaml');
  writeFileSync(configFile, [
    'zookeeper-servers:', `  - host: ${zkHost}`, `    port: ${zkPort}`, `    chroot: ${chroot}`,
    `images-dir: ${join(dir, 'images')}`, `build-log-dir: ${join(dir, 'logs')}`, 'labels: []',
    'diskimages:', ...diskimage,
    'providers:', '  - name: fake-provider', '    driver: fake', '    cloud: bench', '    rate: 0.0001',
    `    state-file: ${join(dir, 'cloud.json')}`, '    diskimages:', '      - name: bench-image',
    '    pools:', '      - name: main', '        max-servers: 1', '        labels: []', '',
  ].join('\n'));
  return { dir, configFile, chroot, env: { ...process.env, OS_CLIENT_CONFIG_FILE: clouds } };
}

async function zkClient(chroot: string): Promise<ZooKeeper> {
  const zk = new ZooKeeper({ servers: [{ host: zkHost, port: Number(zkPort), chroot }], connectTimeoutMs: 10_000 });
  await zk.connect();
  return zk;
}

async function dropChroot(chroot: string): Promise<void> {
  const zk = new ZooKeeper({ servers: `${zkHost}:${zkPort}`, connectTimeoutMs: 10_000 });
  await zk.connect();
  try {
    await zk.deleteRecursive(chroot);
  } finally {
    await zk.close();
  }
}

interface BuilderRun { dibS: number; totalS: number; cpuS: number; uploadS: number; stalledMs: number }

/** Build `buildId` of bench-image with a builder; wall time of the DIB run and of the whole build. */
async function builderBuild(s: Scenario, buildId: string, dibCmd?: string): Promise<BuilderRun> {
  const zk = await zkClient(s.chroot);
  let dibMs = 0;
  let stalledMs = 0;
  let readyAt = 0;
  let uploadedAt = 0;
  let cpu: NodeJS.CpuUsage | null = null;
  // the daemon's own intervals (10 s; a finished build wakes the uploaders at once): what it costs
  // in production, not what a test's fast polling costs
  const builder = new Builder({
    configFile: s.configFile, env: s.env, cleanupIntervalMs: 600_000,
    ...(dibCmd ? { dibCmd } : {}),
    metrics: {
      onBuildFinished: (e) => {
        dibMs = e.durationMs;
        stalledMs = e.outputStalledMs;
        readyAt = Date.now();
        cpu = process.cpuUsage(cpu0);
      },
      onUploadFinished: () => { uploadedAt = Date.now(); },
    },
  });
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  await builder.start();
  try {
    for (;;) {
      const b = await zk.getBuild('bench-image', buildId);
      if (b?.state === 'failed') throw new Error(`bench build failed: ${JSON.stringify(await zk.getBuildProgress('bench-image', buildId))}`);
      if (b?.state === 'ready' && uploadedAt > 0) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const used: NodeJS.CpuUsage = cpu ?? { user: 0, system: 0 };
    const uploadS = (uploadedAt - readyAt) / 1000;
    return { dibS: dibMs / 1000, totalS: (readyAt - t0) / 1000, cpuS: (used.user + used.system) / 1e6, uploadS, stalledMs };
  } finally {
    await builder.stop();
    await zk.close();
  }
}

/**
 * `<wrapper> disk-image-create <args>`: runs DIB (Debian's python first on PATH, as the builder
 * arranges) and writes bash's `times` (CPU of DIB and every descendant it waited for) to
 * $BENCH_TIMES_FILE. Used on both sides so they run the very same thing.
 */
function writeWrapper(): string {
  const w = join(work, 'timed-dib');
  writeFileSync(w, '#!/bin/bash\nexport PATH=/usr/bin:/usr/sbin:$PATH\n"$@"\nrc=$?\ntimes > "$BENCH_TIMES_FILE"\nexit $rc\n', { mode: 0o755 });
  return w;
}

/** children user+sys seconds from `times` output (its second line) */
function readTimes(file: string): number {
  const line = readFileSync(file, 'utf8').trim().split('\n')[1] ?? '';
  const secs = [...line.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return secs.reduce((a, b) => a + b, 0);
}

/** The same DIB command and environment, run by hand: `cmd > log 2>&1`. */
async function handBuild(s: Scenario, out: string, wrapper: string, timesFile: string): Promise<number> {
  const config = await loadConfig(s.configFile, { env: s.env });
  const di = config.diskimages.get('bench-image');
  if (!di) throw new Error('no bench-image');
  const argv = [wrapper, ...dibCommand('disk-image-create', di.formats, out, di.elements)];
  const exe = await resolveExecutable('disk-image-create', process.env.PATH);
  if (exe === null) throw new Error('disk-image-create not found');
  const env = { ...dibEnvironment(s.env, { diskimage: di, filename: out, elementsDir: config.elementsDir, shippedElementsDir: SHIPPED_ELEMENTS_DIR, dibExecutable: wrapper }), BENCH_TIMES_FILE: timesFile };
  const log = openSync(`${out}.log`, 'w');
  const t0 = Date.now();
  const rc = await new Promise<number>((res) => {
    const p = spawn(argv[0] ?? '', argv.slice(1), { env, stdio: ['ignore', log, log] });
    p.on('exit', (code) => res(code ?? 1));
  });
  closeSync(log);
  if (rc !== 0) throw new Error(`hand build failed (rc ${rc}), see ${out}.log`);
  return (Date.now() - t0) / 1000;
}

const results: Record<string, unknown> = {};

async function realOverhead(): Promise<void> {
  const ssh = join(work, 'ssh');
  mkdirSync(ssh);
  execFileSync('ssh-keygen', ['-q', '-N', '', '-t', 'ed25519', '-f', join(ssh, 'id_ed25519')]);
  const dibEnv = JSON.parse(execFileSync('bash', [join(root, 'scripts/dib-env.sh'), '--json', '--release', 'bookworm'], { encoding: 'utf8' })) as Record<string, string>;
  const envVars: Record<string, string> = { ...dibEnv, DIB_NODEPOOL_SSH_PUBLIC_KEY: join(ssh, 'id_ed25519.pub') };
  if (process.env.NODEPOOL_TEST_DIB_CACHE) envVars.DIB_IMAGE_CACHE = process.env.NODEPOOL_TEST_DIB_CACHE;
  const image = [
    '  - name: bench-image', '    elements: [debian-minimal, nodepool-base]', '    release: bookworm', '    formats: [raw]', '    env-vars:',
    ...Object.entries(envVars).map(([k, v]) => `      ${k}: ${JSON.stringify(v)}`),
  ];
  const cache = envVars.DIB_IMAGE_CACHE ?? join(process.env.HOME ?? '/root', '.cache', 'image-create');
  const hand: number[] = [];
  const handCpu: number[] = [];
  const builtCpu: number[] = [];
  const built: BuilderRun[] = [];
  const wrapper = writeWrapper();
  const timesFile = join(work, 'times');
  let warmup: number | null = null;
  if (!existsSync(join(cache, 'debootstrap-debian-bookworm-amd64.tar.gz'))) {
    const s = scenario('warmup', image, 'raw');
    process.stderr.write('bench: DIB cache is cold; warming it with one build (not counted)\n');
    warmup = await handBuild(s, join(s.dir, 'bench-image-warmup'), wrapper, timesFile);
  }
  for (let i = 0; i < RUNS; i++) {
    const s = scenario(`real-${i}`, image, 'raw');
    s.env = { ...s.env, BENCH_TIMES_FILE: timesFile };
    mkdirSync(join(s.dir, 'images'), { recursive: true });
    const byHand = async () => {
      process.stderr.write(`bench: run ${i + 1}/${RUNS}: disk-image-create by hand...\n`);
      hand.push(await handBuild(s, join(s.dir, `hand-${i}`), wrapper, timesFile));
      handCpu.push(readTimes(timesFile));
      rmSync(join(s.dir, `hand-${i}.raw`), { force: true });
    };
    const byBuilder = async () => {
      process.stderr.write(`bench: run ${i + 1}/${RUNS}: the same build through nodepool-builder...\n`);
      built.push(await builderBuild(s, '0000000001', `${wrapper} disk-image-create`));
      builtCpu.push(readTimes(timesFile));
    };
    // alternate which goes first, so a warmer page cache does not always favour one side
    if (i % 2 === 0) { await byHand(); await byBuilder(); } else { await byBuilder(); await byHand(); }
    await dropChroot(s.chroot);
    rmSync(s.dir, { recursive: true, force: true });
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const handS = mean(hand);
  const totalS = mean(built.map((b) => b.totalS));
  const round1 = (x: number) => Math.round(x * 10) / 10;
  const builderCpu = mean(built.map((b) => b.cpuS));
  results.real_build = {
    elements: 'debian-minimal nodepool-base', format: 'raw', release: 'bookworm', runs: RUNS,
    load_average: loadavg().map((l) => round1(l)),
    cold_warmup_s: warmup, hand_wall_s: hand, builder_dib_wall_s: built.map((b) => b.dibS), builder_total_wall_s: built.map((b) => b.totalS),
    dib_cpu_s_by_hand: handCpu, dib_cpu_s_under_builder: builtCpu,
    builder_process_cpu_s: built.map((b) => round1(b.cpuS)),
    dib_output_stalled_ms: built.map((b) => b.stalledMs),
    wall_overhead_pct: round1(((totalS - handS) / handS) * 100),
    dib_cpu_overhead_pct: round1(((mean(builtCpu) - mean(handCpu)) / mean(handCpu)) * 100),
    builder_cpu_pct_of_dib_cpu: round1((builderCpu / mean(builtCpu)) * 100),
    upload_after_ready_s: built.map((b) => b.uploadS),
  };
}

async function uploadThroughput(): Promise<void> {
  // a real file of SIZE_MB (random data, so nothing is cheaper than it would be for an image)
  const file = join(work, 'upload.raw');
  const fd = openSync(file, 'w');
  const chunk = randomBytes(1024 * 1024);
  for (let i = 0; i < SIZE_MB; i++) writeSync(fd, chunk);
  closeSync(fd);
  const cloud = fakeCloud(join(work, 'upload-cloud.json'), 'raw');
  await cloud.start();
  spawnSync('sh', ['-c', `cat ${file} > /dev/null`]); // page cache: measure the upload, not the disk
  const t0 = process.hrtime.bigint();
  await cloud.uploadImage({ name: 'bench-upload', file, format: 'raw', metadata: {} });
  const readS = Number(process.hrtime.bigint() - t0) / 1e9;
  const N = 200;
  const t1 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await cloud.uploadImage({ name: `bench-${i}`, file, format: 'raw', metadata: {}, md5: 'd41d8cd98f00b204e9800998ecf8427e' });
  const withSumS = Number(process.hrtime.bigint() - t1) / 1e9;
  await cloud.stop();

  // the builder's whole upload path for a fake-DIB image of SIZE_MB (checksum files present)
  const s = scenario('upload-path', [
    '  - name: bench-image', '    elements: [fedora]', '    formats: [raw]', '    env-vars:', `      FAKE_DIB_SIZE: "${SIZE_MB * 1024 * 1024}"`,
  ], 'raw');
  const b = await builderBuild(s, '0000000001', join(root, 'test/dib/fake-disk-image-create'));
  await dropChroot(s.chroot);
  results.upload = {
    size_mb: SIZE_MB,
    fake_cloud_read_and_hash_mb_per_s: Math.round(SIZE_MB / readS),
    fake_cloud_uploads_per_s_with_checksum: Math.round(N / withSumS),
    builder_ready_to_upload_ready_s: Math.round(b.uploadS * 1000) / 1000,
  };
}

try {
  if (!opts['skip-real']) {
    if (spawnSync('sh', ['-c', 'command -v disk-image-create']).status !== 0) {
      results.real_build = 'skipped: disk-image-create not installed';
    } else {
      await realOverhead();
    }
  }
  await uploadThroughput();
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
} finally {
  zkService.stop();
  rmSync(work, { recursive: true, force: true });
}
