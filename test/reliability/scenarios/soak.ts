// Scenario 7 (never in CI): a bounded soak. Two launcher processes and a builder under a mixed
// load for N minutes — Zuul jobs of one and two nodes on a cloud image and on a built image,
// min-ready refills, operator deletes of ready nodes, a fresh image build every minute (uploads,
// rotation and deletion of old builds follow). Every daemon is sampled: RSS and file descriptors
// from /proc, heap (exactly, after a full collection, once a minute) and live libuv resources
// (timers, sockets ...) from a probe loaded with `--import` (lib/probe.mjs). Verdicts: memory
// flat (see judge()), no fd or timer growth, p95
// latency of the last third within twice that of the first, and nothing lost, leaked or
// allocated twice.
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { ZuulLoad, pct, summarize, zkRetry } from '../../../bench/zuul-client.js';
import { Auditor } from '../lib/audit.js';
import { newResult, type ScenarioResult } from '../lib/result.js';
import { BuilderProcess, probeArgs, readProbe, type DaemonProcess, type ProbeSample } from '../lib/procs.js';
import { World, sleep, waitUntil } from '../lib/world.js';

export interface SoakOptions {
  minutes: number;
  launchers: number;
  concurrency: number;
  holdMs: number;
  /** a new image build every this many ms */
  buildEveryMs: number;
  /** an operator deletes a ready node every this many ms */
  deleteEveryMs: number;
  sampleMs: number;
  /** extra launcher flags (e.g. ['--no-history'] to tell the recorder's memory from the rest) */
  launcherFlags?: string[];
  /** extra launcher environment (e.g. MALLOC_ARENA_MAX) */
  launcherEnv?: NodeJS.ProcessEnv;
}

export const SOAK: SoakOptions = {
  minutes: 10, launchers: 2, concurrency: 8, holdMs: 200, buildEveryMs: 60_000, deleteEveryMs: 15_000, sampleMs: 10_000,
};

interface Series {
  daemon: string;
  /** from /proc every sampleMs: resident memory (all, anonymous, file-backed) and descriptors */
  samples: { t: number; rssKb: number; anonKb: number; fileKb: number; fds: number }[];
  probe: ProbeSample[];
}

/** Least-squares slope (y per ms). */
function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)] ?? NaN;
};

export interface DaemonVerdict {
  daemon: string;
  rssStartMb: number;
  rssEndMb: number;
  /** least-squares RSS trend over the steady part (after the first quarter) */
  rssTrendMbPerMin: number;
  /** RSS median per minute */
  rssPerMinuteMb: number[];
  /** the live heap per minute: heapUsed right after a full collection (the probe's gc sample) */
  liveHeapPerMinuteMb: number[];
  /** growth of the live heap over the steady part (after the first quarter) */
  liveHeapGrowthMb: number;
  /** anonymous memory outside the V8 heap per minute: RssAnon - heapTotal (malloc, stacks) */
  nativePerMinuteMb: number[];
  /** growth of that over the second half */
  nativeGrowthMb: number;
  /** growth of file-backed resident memory over the run (code pages first used; reported only) */
  fileGrowthMb: number;
  rssFlat: boolean;
  fdsStart: number;
  fdsEnd: number;
  timersStart: number;
  timersEnd: number;
  heapStartMb: number;
  heapEndMb: number;
}

const MB = 1048576;
/** growth of the live heap over the steady part above this is a leak (it is measured exactly) */
export const LIVE_HEAP_LIMIT_MB = 3;
/** growth of the anonymous memory outside the V8 heap over the second half above this is a trend */
export const FLAT_LIMIT_MB = 8;

/**
 * Verdicts of one daemon. RSS itself moves by tens of MB with the heap size V8 reserves under
 * allocation pressure (heapTotal), and the anonymous memory outside the V8 heap (allocator
 * arenas, the JIT) rises by some 20 MB over the first ten minutes or so before it levels off (a
 * 30-minute soak showed it flat from about the twelfth minute on). So "RSS flat" is judged on
 * what a leak would grow: the live heap, measured exactly once a minute right after a full
 * collection, over the steady part; and the anonymous memory outside the V8 heap (RssAnon -
 * heapTotal: malloc arenas, buffers, stacks) over the second half. File-backed pages (code) hold
 * no leak and are only reported.
 */
export function judge(s: Series): DaemonVerdict {
  const steady = s.samples.slice(Math.floor(s.samples.length / 4));
  const pts = steady.map((x) => ({ x: x.t, y: x.rssKb / 1024 }));
  const perMs = slope(pts);
  const t0 = s.probe[0]?.t ?? s.samples[0]?.t ?? 0;
  const minuteOf = (t: number): number => Math.floor((t - t0) / 60_000);
  const minutes = new Map<number, { probe: ProbeSample[]; proc: Series['samples'] }>();
  const slot = (k: number) => minutes.get(k) ?? minutes.set(k, { probe: [], proc: [] }).get(k) ?? { probe: [], proc: [] };
  for (const p of s.probe) slot(minuteOf(p.t)).probe.push(p);
  for (const x of s.samples) if (x.t >= t0) slot(minuteOf(x.t)).proc.push(x);
  const windows = [...minutes.entries()].sort((a, b) => a[0] - b[0])
    .filter(([, w]) => w.probe.length > 0 && w.proc.length > 0)
    .map(([k, w]) => {
      const gcd = w.probe.filter((p) => p.afterGc);
      return {
        t: k * 60_000,
        // (without the probe's gc sample, the lowest heapUsed of the minute)
        live: Math.min(...(gcd.length > 0 ? gcd : w.probe).map((p) => p.heapUsed)) / MB,
        native: median(w.proc.map((x) => x.anonKb / 1024)) - median(w.probe.map((p) => (p.heapTotal ?? 0) / MB)),
        file: median(w.proc.map((x) => x.fileKb / 1024)),
        rss: median(w.proc.map((x) => x.rssKb / 1024)),
      };
    });
  const steadyW = windows.slice(Math.floor(windows.length / 4));
  const liveGrowth = steadyW.length >= 2
    ? median(steadyW.slice(-3).map((w) => w.live)) - median(steadyW.slice(0, 3).map((w) => w.live)) : 0;
  const half = windows.slice(Math.floor(windows.length / 2));
  const nativeGrowth = half.length >= 2
    ? slope(half.map((w) => ({ x: w.t, y: w.native }))) * ((half[half.length - 1]?.t ?? 0) - (half[0]?.t ?? 0)) : 0;
  const fileGrowth = windows.length >= 2 ? (windows[windows.length - 1]?.file ?? 0) - (windows[0]?.file ?? 0) : 0;
  const probe = s.probe.slice(Math.floor(s.probe.length / 4));
  const timers = (p: ProbeSample | undefined): number => p?.resources.Timeout ?? 0;
  const head = probe.slice(0, 5);
  const tail = probe.slice(-5);
  const round = (x: number): number => Math.round(x * 10) / 10;
  return {
    daemon: s.daemon,
    rssStartMb: Math.round(median(steady.slice(0, 3).map((x) => x.rssKb / 1024))),
    rssEndMb: Math.round(median(steady.slice(-3).map((x) => x.rssKb / 1024))),
    rssTrendMbPerMin: Math.round(perMs * 60_000 * 100) / 100,
    rssPerMinuteMb: windows.map((w) => Math.round(w.rss)),
    liveHeapPerMinuteMb: windows.map((w) => round(w.live)),
    liveHeapGrowthMb: round(liveGrowth),
    nativePerMinuteMb: windows.map((w) => round(w.native)),
    nativeGrowthMb: round(nativeGrowth),
    fileGrowthMb: round(fileGrowth),
    rssFlat: windows.length >= 4 && liveGrowth <= LIVE_HEAP_LIMIT_MB && nativeGrowth <= FLAT_LIMIT_MB,
    fdsStart: median(steady.slice(0, 3).map((x) => x.fds)),
    fdsEnd: median(steady.slice(-3).map((x) => x.fds)),
    timersStart: median(head.map(timers)),
    timersEnd: median(tail.map(timers)),
    heapStartMb: Math.round(median(head.map((p) => p.heapUsed / MB))),
    heapEndMb: Math.round(median(tail.map((p) => p.heapUsed / MB))),
  };
}

export async function runSoak(o: SoakOptions): Promise<ScenarioResult> {
  const r = newResult(`soak: ${o.minutes} min mixed load`);
  const t0 = Date.now();
  const world = await new World({ prefix: 'np-rel-soak' }).start();
  const auditor = await new Auditor(await world.connect()).start();
  const daemons: DaemonProcess[] = [];
  try {
    const imagesDir = join(world.dir, 'images');
    mkdirSync(imagesDir, { recursive: true });
    world.writeConfig(`${world.zkYaml()}
images-dir: ${imagesDir}
build-log-dir: ${join(world.dir, 'build-logs')}
labels:
  - name: small
    min-ready: 2
  - name: built
    min-ready: 1
diskimages:
  - name: img
    formats: [qcow2]
    elements: [fedora, vm]
    env-vars:
      FAKE_DIB_SLEEP: '1'
providers:
  - name: fake-provider
    driver: fake
    rate: 0.0001
    state-file: ${world.stateFile}
    faults:
      boot-delay: 0.3
      delete-delay: 0.1
    diskimages:
      - name: img
    cloud-images:
      - name: fake-image
    pools:
      - name: main
        max-servers: 100
        labels:
          - name: small
            cloud-image: fake-image
            min-ram: 8192
          - name: built
            diskimage: img
            min-ram: 8192
`);
    const series: Series[] = [];
    for (let i = 0; i < o.launchers; i++) {
      const file = join(world.dir, `probe-launcher-${i + 1}.jsonl`);
      const p = probeArgs(file);
      daemons.push(world.startLauncher({ nodeArgs: p.nodeArgs, env: { ...p.env, ...(o.launcherEnv ?? {}) }, flags: o.launcherFlags ?? [] }));
      series.push({ daemon: `launcher-${i + 1}`, samples: [], probe: [] });
    }
    const bprobe = probeArgs(join(world.dir, 'probe-builder.jsonl'));
    const builder = new BuilderProcess('builder', { dir: world.dir, config: world.configFile, flags: ['--fake'], nodeArgs: bprobe.nodeArgs, env: bprobe.env });
    daemons.push(builder);
    series.push({ daemon: 'builder', samples: [], probe: [] });
    const launchers = world.launchers;
    await world.waitRegistered(launchers);
    const zk = world.zk;
    await waitUntil('the first image uploaded', async () => {
      for (const b of await zk.getBuilds('img', ['ready'])) {
        if (b.id && (await zk.getImageUploads('img', b.id, 'fake-provider', ['ready'])).length > 0) return true;
      }
      return false;
    }, 120_000, 500).catch((err: Error) => { throw new Error(`${err.message}\n${builder.tail()}`); });

    const load = new ZuulLoad(zk, {
      labels: ['small'], labelSets: [['small'], ['small', 'small'], ['built']], concurrency: o.concurrency, holdMs: o.holdMs, timeoutMs: 180_000,
    });
    const tLoad = Date.now();
    load.start();
    const end = tLoad + o.minutes * 60_000;
    let builds = 0;
    let deletes = 0;
    let nextBuild = tLoad + o.buildEveryMs;
    let nextDelete = tLoad + o.deleteEveryMs;
    let nextSample = tLoad;
    while (Date.now() < end) {
      const now = Date.now();
      if (now >= nextSample) {
        nextSample += o.sampleMs;
        daemons.forEach((d, i) => {
          const m = d.memKb();
          series[i]?.samples.push({ t: now, rssKb: m.rss, anonKb: m.anon, fileKb: m.file, fds: d.fdCount() });
        });
        for (const d of daemons) if (!d.running) r.problems.push(`${d.name} exited during the soak:\n${d.tail()}`);
        if (daemons.some((d) => !d.running)) break;
      }
      if (now >= nextBuild) {
        nextBuild += o.buildEveryMs;
        await zkRetry(zk, () => zk.submitBuildRequest('img'));
        builds++;
      }
      if (now >= nextDelete) {
        nextDelete += o.deleteEveryMs;
        // `nodepool delete <id>`: lock a ready unallocated node, mark it deleting
        const ready = (await world.nodes()).filter((n) => n.state === 'ready' && n.allocated_to === null);
        const victim = ready[0];
        if (victim && (await zk.lockNode(victim, { blocking: false }).catch(() => false))) {
          try {
            const fresh = victim.id ? await zk.getNode(victim.id) : null;
            if (fresh && fresh.state === 'ready' && fresh.allocated_to === null) {
              fresh.state = 'deleting';
              zk.transferNodeLock(victim, fresh);
              await zk.storeNode(fresh);
              deletes++;
            }
          } finally {
            await zk.unlockNode(victim).catch(() => undefined);
          }
        }
      }
      await sleep(250);
    }
    const outcomes = await load.stop();
    await world.removeStrayRequests();
    const settled = await world.settle(90_000);
    daemons.forEach((d, i) => {
      const s = series[i];
      if (s) s.probe = readProbe(join(world.dir, `probe-${d.name}.jsonl`));
    });
    const verdicts = series.map(judge);
    const s = summarize(outcomes);

    // latency per third of the run
    const third = (end - tLoad) / 3;
    const p95Of = (from: number, to: number): number => pct(outcomes.filter((x) => x.latencyMs !== null && x.submittedAt >= from && x.submittedAt < to)
      .map((x) => x.latencyMs ?? 0).sort((a, b) => a - b), 95);
    const p95First = p95Of(tLoad, tLoad + third);
    const p95Mid = p95Of(tLoad + third, tLoad + 2 * third);
    const p95Last = p95Of(tLoad + 2 * third, end);
    const perMinute: number[] = [];
    for (let t = tLoad; t < end; t += 60_000) perMinute.push(p95Of(t, t + 60_000));

    for (const v of verdicts) {
      if (!v.rssFlat) {
        r.problems.push(`${v.daemon}: memory grows: live heap +${v.liveHeapGrowthMb} MB (limit ${LIVE_HEAP_LIMIT_MB} MB; per minute `
          + `${v.liveHeapPerMinuteMb.join(', ')}), anonymous memory outside the heap +${v.nativeGrowthMb} MB (limit ${FLAT_LIMIT_MB} MB; `
          + `per minute ${v.nativePerMinuteMb.join(', ')}); RSS ${v.rssTrendMbPerMin} MB/min, per minute ${v.rssPerMinuteMb.join(', ')} MB`);
      }
      if (v.fdsEnd > v.fdsStart + 10) r.problems.push(`${v.daemon}: file descriptors ${v.fdsStart} -> ${v.fdsEnd}`);
      if (v.timersEnd > v.timersStart + 20) r.problems.push(`${v.daemon}: timers ${v.timersStart} -> ${v.timersEnd}`);
    }
    if (p95Last > 2 * p95First + 250) r.problems.push(`p95 latency not stable: ${p95First} ms in the first third, ${p95Last} ms in the last`);
    if (s.doubleAllocated.length > 0) r.problems.push(`nodes in two jobs: ${s.doubleAllocated.join(', ')}`);
    if (auditor.violations.length > 0) r.problems.push(...auditor.violations.map((v) => `illegal transition: ${v}`));

    r.load = `${o.launchers} launchers + 1 builder for ${o.minutes} min: ${o.concurrency} Zuul jobs at once (1-2 nodes, cloud and built images), `
      + `${s.total} requests, ${deletes} operator deletes, ${builds} image builds`;
    r.faults = 'none (steady mixed load)';
    r.requestsTotal = s.total;
    r.requestsLost = s.lost + s.errors;
    r.requestsFailed = s.failed;
    r.doubleAllocated = s.doubleAllocated.length + s.misallocated.length;
    r.leaked = { servers: settled.leaks.servers.length, nodes: settled.leaks.nodes.length, requests: settled.leaks.requests.length, other: 0 };
    r.recoveryMs = null;
    r.recoveryWhat = '–';
    r.details = {
      verdicts, p95Ms: { firstThird: p95First, middleThird: p95Mid, lastThird: p95Last, perMinute },
      latency_ms: s.latency_ms, throughputPerMin: Math.round(s.total / o.minutes), leaks: settled.leaks,
      builds, deletes,
    };
    return r;
  } finally {
    r.seconds = Math.round((Date.now() - t0) / 100) / 10;
    for (const d of daemons) await d.stop();
    auditor.stop();
    await world.close();
  }
}
