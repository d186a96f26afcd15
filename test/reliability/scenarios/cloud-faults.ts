// Scenario 4: a misbehaving cloud under load, two launcher processes sharing it.
//   - the fake cloud (a state file both launchers use): each fault is switched on and off by
//     rewriting nodepool.yaml, as an operator would (the launchers reload it; launches under way
//     finish on the provider they started on);
//   - the OpenStack API simulator (scripts/openstack-sim.sh, a process of its own, spoken to over
//     HTTP by the openstack driver): faults are switched through its admin API at run time.
// Per fault: no request lost (a cloud that refuses to boot may fail requests; quota and delete
// trouble may not), failed nodes and their servers cleaned up, nothing leaked, retries back off.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ZuulLoad, runJob, summarize, type JobOutcome } from '../../../bench/zuul-client.js';
import { Auditor } from '../lib/audit.js';
import { newResult, type ScenarioResult } from '../lib/result.js';
import { World, sleep, waitUntil, type FakeFaultsYaml, type ServerView } from '../lib/world.js';
import { REPO, type LauncherProcess, type LogLine } from '../lib/procs.js';

export interface CloudFaultsOptions {
  launchers: number;
  concurrency: number;
  /** healthy load before each fault (ms) */
  baselineMs: number;
  /** how long each fault lasts (ms) */
  faultMs: number;
  /** load after the fault is lifted (ms) */
  afterMs: number;
  holdMs: number;
  /** which faults to run (default all) */
  only?: FaultName[];
}

export const CI_CLOUD_FAULTS: CloudFaultsOptions = {
  launchers: 2, concurrency: 6, baselineMs: 2_000, faultMs: 8_000, afterMs: 3_000, holdMs: 100,
};

export type FaultName = 'api-errors' | 'stuck-in-build' | 'boot-error' | 'quota-exceeded' | 'delete-trouble';

/** What the simulator's admin API takes (POST /_sim/faults; `rules` replaces the list). */
interface SimFaultsJson {
  rules?: { service?: string; method?: string; path?: string; status?: number; probability?: number; delayMs?: number; hang?: boolean }[];
  bootResult?: 'ACTIVE' | 'ERROR' | 'BUILD';
  bootDelayMs?: number;
  deleteDelayMs?: number;
  deleteHang?: boolean;
  quotaExceeded?: boolean;
}

interface FaultSpec {
  name: FaultName;
  title: string;
  faults: FakeFaultsYaml;
  sim: SimFaultsJson;
  words: string;
  /** requests may be answered `failed` while it lasts (the cloud boots nothing, or too little) */
  mayFail: boolean;
  recoveryWhat: string;
}

const HEALTHY: FakeFaultsYaml = { 'boot-delay': 0.3, 'delete-delay': 0.1 };
const SIM_HEALTHY: SimFaultsJson = { rules: [], bootResult: 'ACTIVE', bootDelayMs: 300, deleteDelayMs: 100, deleteHang: false, quotaExceeded: false };

export const FAULTS: FaultSpec[] = [
  {
    name: 'api-errors', title: 'cloud: API errors (HTTP 500)', mayFail: true,
    faults: { ...HEALTHY, 'api-error-rate': 0.25, 'create-failure-rate': 0.25 },
    sim: { rules: [{ service: 'compute', status: 500, probability: 0.35 }] },
    words: 'fake: 25% of all API calls and another 25% of creates answer HTTP 500; simulator: 35% of Nova calls',
    recoveryWhat: 'fault lifted to the first new request fulfilled',
  },
  {
    name: 'stuck-in-build', title: 'cloud: servers stuck in BUILD (timeouts)', mayFail: true,
    faults: { ...HEALTHY, 'boot-delay': 3600 },
    sim: { bootResult: 'BUILD' },
    words: 'servers never leave BUILD; launch-timeout 3 s, 3 attempts',
    recoveryWhat: 'fault lifted to the first new request fulfilled',
  },
  {
    name: 'boot-error', title: 'cloud: servers go to ERROR', mayFail: true,
    faults: { ...HEALTHY, 'error-rate': 1 },
    sim: { bootResult: 'ERROR' },
    words: 'every server ends in ERROR',
    recoveryWhat: 'fault lifted to the first new request fulfilled',
  },
  {
    name: 'quota-exceeded', title: 'cloud: quota exceeded mid-run', mayFail: false,
    faults: { ...HEALTHY, 'quota-exceeded': true },
    sim: { quotaExceeded: true },
    words: 'every create answers "quota exceeded"',
    recoveryWhat: 'fault lifted to every waiting request fulfilled',
  },
  {
    name: 'delete-trouble', title: 'cloud: deletes fail or never complete', mayFail: false,
    faults: { ...HEALTHY, 'delete-failure-rate': 0.5, 'delete-delay': 3600 },
    sim: { deleteHang: true, rules: [{ service: 'compute', method: 'DELETE', status: 500, probability: 0.5 }] },
    words: 'half the deletes answer HTTP 500, the other half are accepted but never complete',
    recoveryWhat: 'fault lifted to every server deleted',
  },
];

/** Log lines of a launcher after `since` (ms). */
function linesSince(p: LauncherProcess, since: number): LogLine[] {
  return p.logLines().filter((l) => l.time !== undefined && Date.parse(String(l.time)) >= since);
}

/** The cloud a run breaks, and how. */
interface CloudControl {
  readonly label: string;
  /** write the healthy config (and start what the cloud needs) before the launchers start */
  setup(world: World, o: CloudFaultsOptions): Promise<void>;
  launcherEnv(): NodeJS.ProcessEnv;
  /** switch a fault on (spec) or off (null); resolves when every launcher sees it */
  apply(world: World, procs: LauncherProcess[], spec: FaultSpec | null, o: CloudFaultsOptions): Promise<number>;
  teardown(): void;
}

function fakeYaml(world: World, faults: FakeFaultsYaml, concurrency: number): string {
  return world.fakeConfig({
    labels: [{ name: 'small', minReady: 0 }], faults, maxServers: Math.max(50, concurrency * 4),
    providerExtra: '    launch-timeout: 3\n    launch-retries: 3\n',
  });
}

/** The fake cloud: faults through the config file, which the launchers reload. */
class FakeCloudControl implements CloudControl {
  readonly label = 'fake cloud';

  async setup(world: World, o: CloudFaultsOptions): Promise<void> {
    world.writeConfig(fakeYaml(world, HEALTHY, o.concurrency));
  }

  launcherEnv(): NodeJS.ProcessEnv {
    return {};
  }

  async apply(world: World, procs: LauncherProcess[], spec: FaultSpec | null, o: CloudFaultsOptions): Promise<number> {
    const reloaded = (p: LauncherProcess): number => p.logLines().filter((l) => l.msg === 'Configuration reloaded').length;
    const before = procs.map(reloaded);
    world.writeConfig(fakeYaml(world, spec ? spec.faults : HEALTHY, o.concurrency));
    await waitUntil('every launcher reloaded its config', () => procs.every((p, i) => reloaded(p) > (before[i] ?? 0)), 30_000, 100);
    return Date.now();
  }

  teardown(): void {}
}

/** The OpenStack API simulator as a process of its own; faults through its admin API. */
class SimCloudControl implements CloudControl {
  readonly label = 'OpenStack simulator';
  private dir = '';
  private base = '';

  async setup(world: World, o: CloudFaultsOptions): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'np-rel-sim-'));
    const cfg = join(this.dir, 'sim.json');
    const simOptions = { limits: { instances: 1000, cores: 4000, ram: 100_000_000 }, faults: SIM_HEALTHY };
    writeFileSync(cfg, JSON.stringify(simOptions));
    const r = spawnSync('bash', [join(REPO, 'scripts/openstack-sim.sh'), 'start', this.dir, '0', cfg], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`openstack-sim.sh start failed: ${r.stderr}`);
    this.base = r.stdout.trim().replace(/\/identity\/v3$/, '');
    world.serverSource = async () => {
      const state = await (await fetch(`${this.base}/_sim/state`)).json() as { servers: { id: string; metadata: Record<string, string>; deletingSince: string | null; createdAt: string }[] };
      return state.servers.map((x): ServerView => ({
        id: x.id, nodeId: x.metadata.nodepool_node_id ?? null, deleting: x.deletingSince !== null, createdAt: Date.parse(x.createdAt),
      }));
    };
    world.writeConfig(`${world.zkYaml()}
labels:
  - name: small
    min-ready: 0
providers:
  - name: sim
    cloud: sim
    rate: 0.0001
    boot-timeout: 5
    launch-timeout: 3
    launch-retries: 3
    cloud-images:
      - name: cirros
        image-name: cirros-0.6.2-x86_64-disk
        username: cirros
    pools:
      - name: main
        max-servers: ${Math.max(50, o.concurrency * 4)}
        networks: [private]
        host-key-checking: false
        labels:
          - name: small
            cloud-image: cirros
            min-ram: 2048
`);
  }

  launcherEnv(): NodeJS.ProcessEnv {
    return { OS_CLIENT_CONFIG_FILE: join(this.dir, 'clouds.yaml') };
  }

  async apply(_world: World, _procs: LauncherProcess[], spec: FaultSpec | null): Promise<number> {
    const body = spec ? { ...SIM_HEALTHY, ...spec.sim } : SIM_HEALTHY;
    const res = await fetch(`${this.base}/_sim/faults`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`POST /_sim/faults: ${res.status} ${await res.text()}`);
    return Date.now();
  }

  teardown(): void {
    if (!this.dir) return;
    spawnSync('bash', [join(REPO, 'scripts/openstack-sim.sh'), 'stop', this.dir], { timeout: 30_000 });
    if (!process.env.NODEPOOL_KEEP_RELIABILITY) rmSync(this.dir, { recursive: true, force: true });
  }

  /** What the simulator's log says (for failure messages). */
  log(): string {
    try {
      return readFileSync(join(this.dir, 'sim.log'), 'utf8').slice(-2000);
    } catch {
      return '';
    }
  }
}

/** Successive retry delays per key, from log lines carrying `key` and a delay field. */
function delaysBy(lines: LogLine[], key: string, field: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const l of lines) {
    const d = l[field];
    if (typeof l[key] !== 'string' || typeof d !== 'number') continue;
    // each launcher keeps its own retry schedule
    const k = `${String(l.pid)}:${String(l[key])}`;
    out.set(k, [...(out.get(k) ?? []), d]);
  }
  return out;
}

/** Delay sequences that do not grow (a retry sooner than the one before), for the backoff check. */
function notBackingOff(seqs: Map<string, number[]>): string[] {
  const bad: string[] = [];
  for (const [k, ds] of seqs) {
    for (let i = 1; i < ds.length; i++) {
      const prev = ds[i - 1] ?? 0;
      const cur = ds[i] ?? 0;
      // equal is fine once capped; a retry sooner than the previous one is not backoff
      if (cur + 50 < prev) bad.push(`${k}: ${ds.join(', ')}`);
    }
  }
  return bad;
}

export type CloudKind = 'fake' | 'openstack-sim';

export async function runCloudFaults(o: CloudFaultsOptions, cloud: CloudKind = 'fake'): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  const control: CloudControl = cloud === 'fake' ? new FakeCloudControl() : new SimCloudControl();
  const world = await new World({ prefix: 'np-rel-cloud' }).start();
  const auditor = await new Auditor(await world.connect()).start();
  try {
    await control.setup(world, o);
    const procs = Array.from({ length: o.launchers }, () => world.startLauncher({ env: control.launcherEnv() }));
    await world.waitRegistered(procs);
    for (const spec of FAULTS) {
      if (o.only && !o.only.includes(spec.name)) continue;
      results.push(await runFault(world, auditor, procs, spec, o, control));
    }
    return results;
  } finally {
    auditor.stop();
    await world.close();
    control.teardown();
  }
}

async function runFault(world: World, auditor: Auditor, procs: LauncherProcess[], spec: FaultSpec, o: CloudFaultsOptions,
  control: CloudControl): Promise<ScenarioResult> {
  const r = newResult(`${spec.title} [${control.label}]`);
  const t0 = Date.now();
  const auditFrom = auditor.violations.length;
  const load = new ZuulLoad(world.zk, { labels: ['small'], concurrency: o.concurrency, holdMs: o.holdMs, timeoutMs: 180_000 });
  load.start();
  await sleep(o.baselineMs);
  const tFault = await control.apply(world, procs, spec, o);
  await sleep(o.faultMs);
  const tClear = await control.apply(world, procs, null, o);
  const waiting = load.outcomes.length; // jobs answered so far; the rest waited through the fault
  // a probe submitted the moment the fault is lifted: how soon is a new request served again
  const probe = runJob(world.zk, { labels: ['small'], timeoutMs: 180_000 });

  // recovery, per fault
  let recoveredAt: number | null = null;
  try {
    if (spec.name === 'quota-exceeded') {
      await waitUntil('requests that waited through the fault fulfilled', () => {
        const open = load.outcomes.filter((x) => x.submittedAt < tClear && x.answeredAt === null).length;
        return open === 0 && load.outcomes.some((x) => x.submittedAt < tClear && (x.answeredAt ?? 0) > tClear);
      }, 120_000, 50);
      const last = load.outcomes.filter((x) => x.submittedAt < tClear && x.answeredAt !== null).map((x) => x.answeredAt ?? 0);
      recoveredAt = Math.max(tClear, ...last);
    } else if (spec.name === 'delete-trouble') {
      await waitUntil('servers deleted during the fault gone', async () =>
        (await world.serverSource()).filter((x) => x.deleting).length === 0, 120_000, 100);
      recoveredAt = Date.now();
    } else {
      const p = await probe;
      if (p.state !== 'fulfilled' || p.answeredAt === null) throw new Error(`the probe request ended ${p.state}`);
      recoveredAt = p.answeredAt;
    }
  } catch (err) {
    r.problems.push(`no recovery: ${(err as Error).message}`);
  }
  await sleep(Math.max(0, tClear + o.afterMs - Date.now()));
  const outcomes = [...await load.stop(), await probe];
  await world.removeStrayRequests();
  const settled = await world.settle(90_000);
  const s = summarize(outcomes);

  // what the launchers did about it
  const lines = procs.flatMap((p) => linesSince(p, tFault));
  const attempts = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('Launch attempt'));
  const quotaPauses = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('Pausing request') && typeof l.retryMs === 'number');
  const deleteRetries = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('Deletion of node'));
  const reissued = lines.filter((l) => typeof l.msg === 'string' && l.msg.includes('deleting it again'));
  const quotaBackoff = notBackingOff(delaysBy(quotaPauses, 'request', 'retryMs'));
  const deleteBackoff = notBackingOff(delaysBy(deleteRetries.map((l) => ({ ...l, delayMs: Number(/retrying in (\d+) s/.exec(l.msg)?.[1] ?? NaN) * 1000 })), 'node', 'delayMs'));
  if (quotaBackoff.length > 0) r.problems.push(`quota retries not backing off: ${quotaBackoff.slice(0, 3).join('; ')}`);
  if (deleteBackoff.length > 0) r.problems.push(`delete retries not backing off: ${deleteBackoff.slice(0, 3).join('; ')}`);
  if (spec.name === 'quota-exceeded' && quotaPauses.length === 0) r.problems.push('no request was paused by the quota fault');
  if (spec.name === 'delete-trouble' && (deleteRetries.length === 0 || reissued.length === 0)) {
    r.problems.push(`delete trouble not retried (failed deletes retried: ${deleteRetries.length}, stuck deletes re-issued: ${reissued.length})`);
  }
  if (spec.mayFail && attempts.length === 0) r.problems.push('no failed launch attempt was logged: the fault did not bite');
  const v = auditor.violations.slice(auditFrom);
  if (v.length > 0) r.problems.push(...v.map((x) => `illegal transition: ${x}`));
  if (s.doubleAllocated.length > 0) r.problems.push(`nodes in two jobs: ${s.doubleAllocated.join(', ')}`);
  if (!spec.mayFail && s.failed > 0) r.problems.push(`${s.failed} requests failed, though this fault must only delay them`);

  r.load = `${o.launchers} launcher processes, ${o.concurrency} Zuul jobs at once, ${s.total} requests`;
  r.faults = `${spec.words}, for ${Math.round((tClear - tFault) / 1000)} s`;
  r.requestsTotal = s.total;
  r.requestsLost = s.lost + s.errors;
  r.requestsFailed = s.failed;
  r.doubleAllocated = s.doubleAllocated.length + s.misallocated.length;
  r.leaked = { servers: settled.leaks.servers.length, nodes: settled.leaks.nodes.length, requests: settled.leaks.requests.length, other: 0 };
  r.recoveryMs = recoveredAt === null ? null : Math.max(0, recoveredAt - tClear);
  r.recoveryWhat = spec.recoveryWhat;
  r.details = {
    failedLaunchAttempts: attempts.length, quotaPauses: quotaPauses.length,
    quotaRetryDelaysMs: [...delaysBy(quotaPauses, 'request', 'retryMs').values()].slice(0, 3),
    failedDeletesRetried: deleteRetries.length, stuckDeletesReissued: reissued.length,
    answeredBeforeLift: waiting,
    outcomes: { fulfilled: s.fulfilled, failed: s.failed, lost: s.lost, errors: s.errors },
    errors: outcomes.filter((x: JobOutcome) => x.error).slice(0, 3).map((x) => x.error),
    latency_ms: s.latency_ms, settleMs: settled.ms, leaks: settled.leaks,
  };
  r.seconds = Math.round((Date.now() - t0) / 100) / 10;
  return r;
}
