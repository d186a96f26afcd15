// Scenario 1: several launcher processes on one ZooKeeper under a steady Zuul-like load; one is
// killed with -9 while it has launches in flight. Its requests must be taken over (none lost), no
// node may go to two jobs, and every server it had started must be used or deleted within one
// cleanup cycle of its death being visible (its ZooKeeper session expiring).
import { ZUUL_REQUESTOR, ZuulLoad, summarize, type JobOutcome } from '../../../bench/zuul-client.js';
import { Auditor } from '../lib/audit.js';
import { newResult, type ScenarioResult } from '../lib/result.js';
import { World, sleep, waitUntil } from '../lib/world.js';
import type { LauncherProcess } from '../lib/procs.js';

/** The launcher's cleanup period (60 s) — the bound of "within one cleanup cycle". */
export const CLEANUP_CYCLE_MS = 60_000;

export interface LauncherKillOptions {
  launchers: number;
  /** Zuul jobs at once */
  concurrency: number;
  /** load before the kill, after it (ms) */
  beforeMs: number;
  afterMs: number;
  /** seconds a server stays in BUILD: long enough to catch launches in flight */
  bootDelay: number;
  holdMs: number;
  minReady: number;
  /** kill when the victim has at least this many launches in flight */
  inFlight: number;
}

export const CI_LAUNCHER_KILL: LauncherKillOptions = {
  launchers: 3, concurrency: 8, beforeMs: 6_000, afterMs: 20_000, bootDelay: 1.5, holdMs: 200, minReady: 2, inFlight: 2,
};

export async function runLauncherKill(o: LauncherKillOptions): Promise<ScenarioResult> {
  const r = newResult(`launcher kill -9 (${o.launchers} launchers)`);
  const t0 = Date.now();
  const world = await new World({ prefix: 'np-rel-kill' }).start();
  const auditor = await new Auditor(await world.connect()).start();
  try {
    world.writeConfig(world.fakeConfig({
      labels: [{ name: 'small', minReady: o.minReady }],
      faults: { 'boot-delay': o.bootDelay, 'delete-delay': 0.2 },
    }));
    const procs = Array.from({ length: o.launchers }, () => world.startLauncher());
    await world.waitRegistered(procs);
    const load = new ZuulLoad(world.zk, {
      labels: ['small'], labelSets: [['small'], ['small', 'small']], concurrency: o.concurrency, holdMs: o.holdMs, timeoutMs: 120_000,
    });
    load.start();
    await sleep(o.beforeMs);

    // Pick the launcher with launches in flight, then kill it at once.
    let victim: LauncherProcess | null = null;
    await waitUntil(`a launcher with ${o.inFlight} launches in flight`, async () => {
      const nodes = await world.nodes();
      for (const p of procs) {
        if (nodes.filter((n) => n.state === 'building' && p.owns(n.launcher)).length >= o.inFlight) {
          victim = p;
          return true;
        }
      }
      return false;
    }, 60_000, 20);
    const dead = victim as LauncherProcess | null;
    if (dead === null) throw new Error('no victim');
    await dead.kill9();
    const tKill = Date.now();
    const answeredAtKill = load.answered;

    // What the dead launcher left: its nodes, the requests they were for, the servers it made.
    const nodesAtKill = await world.nodes();
    const itsNodes = nodesAtKill.filter((n) => dead.owns(n.launcher));
    const itsNodeIds = new Set(itsNodes.map((n) => n.id ?? ''));
    const building = itsNodes.filter((n) => n.state === 'building' || n.state === 'init');
    // (the Zuul requests only: its own min-ready requests were ephemeral and died with it)
    const itsRequests = new Set<string>();
    for (const id of new Set(itsNodes.map((n) => n.allocated_to).filter((x): x is string => x !== null))) {
      const req = await world.zk.getNodeRequest(id);
      if (req?.requestor === ZUUL_REQUESTOR) itsRequests.add(id);
    }
    const itsServers = world.cloudServers().filter((s) => itsNodeIds.has(s.metadata.nodepool_node_id ?? '')
      || itsNodes.some((n) => n.external_id === s.id));
    r.faults = `kill -9 of 1 of ${o.launchers} launchers with ${building.length} launches in flight, `
      + `${itsRequests.size} requests and ${itsServers.length} servers of its own`;

    // Its death becomes visible when its session expires (its registrations vanish).
    await waitUntil('the dead launcher unregistered', async () =>
      (await world.zk.getRegisteredLaunchers()).every((l) => !l.id.includes(dead.idFragment)), 60_000, 50);
    const tExpired = Date.now();

    // Every server it started: used by a job, usable (a READY node), or deleted.
    const used = (outs: readonly JobOutcome[]) => new Set(outs.filter((x) => x.state === 'fulfilled').flatMap((x) => x.nodes));
    const unresolved = async (): Promise<string[]> => {
      const live = new Map(world.cloudServers().map((s) => [s.id, s]));
      const nodes = new Map((await world.nodes()).map((n) => [n.id ?? '', n]));
      const usedNodes = used(load.outcomes);
      const left: string[] = [];
      for (const s of itsServers) {
        const srv = live.get(s.id);
        if (!srv || srv.deletedAt !== null) continue;
        const nodeId = s.metadata.nodepool_node_id ?? '';
        if (usedNodes.has(nodeId)) continue;
        const node = nodes.get(nodeId);
        if (node && node.state === 'ready' && node.external_id === s.id) continue;
        if (node && (node.state === 'in-use' || node.state === 'used')) continue;
        left.push(`${s.id}(node ${nodeId} ${node?.state ?? 'gone'})`);
      }
      return left;
    };
    let tResolved: number | null = null;
    try {
      await waitUntil('every server of the dead launcher used or deleted', async () => (await unresolved()).length === 0,
        CLEANUP_CYCLE_MS + 30_000, 100);
      tResolved = Date.now();
    } catch {
      r.problems.push(`servers of the dead launcher neither used nor deleted: ${(await unresolved()).join(', ')}`);
    }

    // Its requests are taken over and served.
    let tTakenOver: number | null = null;
    try {
      await waitUntil('the dead launcher\'s requests answered', () =>
        [...itsRequests].every((id) => load.outcomes.some((x) => x.request === id && x.answeredAt !== null)), 120_000, 50);
      const answers = load.outcomes.filter((x) => x.request !== null && itsRequests.has(x.request)).map((x) => x.answeredAt ?? 0);
      tTakenOver = answers.length > 0 ? Math.max(...answers) : tKill;
    } catch {
      r.problems.push(`requests of the dead launcher not answered: ${[...itsRequests].filter((id) => !load.outcomes.some((x) => x.request === id)).join(', ')}`);
    }

    const rest = Math.max(0, tKill + o.afterMs - Date.now());
    await sleep(rest);
    const outcomes = await load.stop();
    await world.removeStrayRequests();
    const settled = await world.settle(60_000);
    const s = summarize(outcomes);

    r.load = `${o.launchers} launcher processes, ${o.concurrency} Zuul jobs at once (1- and 2-node), `
      + `${s.total} requests in ${Math.round((Date.now() - t0) / 1000)} s, boot ${o.bootDelay} s`;
    r.requestsTotal = s.total;
    r.requestsLost = s.lost + s.errors;
    r.requestsFailed = s.failed;
    r.doubleAllocated = s.doubleAllocated.length + s.misallocated.length;
    r.leaked = { servers: settled.leaks.servers.length, nodes: settled.leaks.nodes.length, requests: settled.leaks.requests.length, other: 0 };
    r.recoveryMs = tTakenOver === null ? null : tTakenOver - tKill;
    r.recoveryWhat = 'kill to the last of its requests fulfilled by another launcher';
    r.bounds.push({
      what: 'servers of the dead launcher used or deleted within one cleanup cycle of its session expiring',
      limitMs: CLEANUP_CYCLE_MS, measuredMs: tResolved === null ? null : tResolved - tExpired,
    });
    r.details = {
      killToSessionExpiryMs: tExpired - tKill,
      serversResolvedAfterExpiryMs: tResolved === null ? null : tResolved - tExpired,
      itsRequests: itsRequests.size, itsServers: itsServers.length, inFlightAtKill: building.length,
      answeredBeforeKill: answeredAtKill, outcomes: { fulfilled: s.fulfilled, failed: s.failed, lost: s.lost, errors: s.errors },
      errors: outcomes.filter((x) => x.error).slice(0, 5).map((x) => x.error),
      latency_ms: s.latency_ms, leaks: settled.leaks, settleMs: settled.ms,
    };
    if (s.doubleAllocated.length > 0) r.problems.push(`nodes in two jobs: ${s.doubleAllocated.join(', ')}`);
    if (s.misallocated.length > 0) r.problems.push(`nodes not allocated to the job that got them: ${s.misallocated.join(', ')}`);
    if (auditor.violations.length > 0) r.problems.push(...auditor.violations.map((v) => `illegal transition: ${v}`));
    return r;
  } finally {
    r.seconds = Math.round((Date.now() - t0) / 100) / 10;
    auditor.stop();
    await world.close();
  }
}
