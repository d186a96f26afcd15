// Scenario 2: ZooKeeper trouble under load, on a private three-member ensemble on loopback
// (scripts/zk-ensemble.sh) with three launcher processes configured with all three members.
//   A. one member stopped (the follower serving most clients) -> no pause in service: no session
//      is lost, no request lost or failed, the longest gap between answers stays under the
//      session timeout;
//   B. the leader restarted -> every launcher reconnects and serves again within the session
//      timeout + 5 s (asserted);
//   C. a session expiry forced on one launcher (SIGSTOP for longer than the session timeout,
//      then SIGCONT) -> it re-registers in a new session, acts on no lock it held (audited
//      transitions), the others take its requests over, nothing leaks.
import { ZuulLoad, summarize, type JobOutcome } from '../../../bench/zuul-client.js';
import { paths } from '@nodepool-ts/core/zk';
import { Auditor } from '../lib/audit.js';
import { newResult, type ScenarioResult } from '../lib/result.js';
import { ZkEnsemble } from '../lib/services.js';
import { World, sleep, waitUntil } from '../lib/world.js';
import type { LauncherProcess } from '../lib/procs.js';

/** The launcher's ZooKeeper session timeout (its client's default). */
export const LAUNCHER_SESSION_TIMEOUT_MS = 10_000;

export interface ZkEnsembleOptions {
  launchers: number;
  concurrency: number;
  /** load before each fault and after recovery (ms) */
  baselineMs: number;
  /** how long the stopped member stays down in A (ms) */
  memberDownMs: number;
  /** how long the launcher is frozen in C: longer than the session timeout */
  freezeMs: number;
  bootDelay: number;
  holdMs: number;
  /** run only these parts (default all) */
  parts?: ('A' | 'B' | 'C')[];
}

export const CI_ZK_ENSEMBLE: ZkEnsembleOptions = {
  launchers: 3, concurrency: 8, baselineMs: 4_000, memberDownMs: 10_000, freezeMs: 13_000, bootDelay: 0.5, holdMs: 100,
};

/** Longest stretch without an answer within [from, to] (from the start of the window). */
function longestGap(outcomes: readonly JobOutcome[], from: number, to: number): number {
  const times = outcomes.map((o) => o.answeredAt).filter((t): t is number => t !== null && t >= from && t <= to).sort((a, b) => a - b);
  let prev = from;
  let gap = 0;
  for (const t of [...times, to]) {
    gap = Math.max(gap, t - prev);
    prev = t;
  }
  return gap;
}

/** Session ids owning each registration (launcher id -> ephemeralOwner hex). */
async function registrationOwners(world: World): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const id of await world.zk.getChildren(paths.launchersRoot)) {
    const st = await world.zk.stat(paths.launcher(id));
    if (st) out.set(id, Buffer.from(st.ephemeralOwner).toString('hex'));
  }
  return out;
}

/** "ZooKeeper session <state>" lines of a launcher's log after `since`, as [ms, state]. */
function sessionEvents(p: LauncherProcess, since: number): [number, string][] {
  return p.logLines()
    .filter((l) => typeof l.msg === 'string' && l.msg.startsWith('ZooKeeper session ') && l.time !== undefined)
    .map((l): [number, string] => [Date.parse(String(l.time)), String(l.state ?? l.msg.slice(18))])
    .filter(([t]) => t >= since);
}

function fillCounts(r: ScenarioResult, outcomes: readonly JobOutcome[]): ReturnType<typeof summarize> {
  const s = summarize(outcomes);
  r.requestsTotal = s.total;
  r.requestsLost = s.lost + s.errors;
  r.requestsFailed = s.failed;
  r.doubleAllocated = s.doubleAllocated.length + s.misallocated.length;
  if (s.doubleAllocated.length > 0) r.problems.push(`nodes in two jobs: ${s.doubleAllocated.join(', ')}`);
  if (s.misallocated.length > 0) r.problems.push(`nodes not allocated to the job that got them: ${s.misallocated.join(', ')}`);
  const errors = outcomes.filter((o) => o.error).map((o) => o.error);
  if (errors.length > 0) r.details.clientErrors = errors.slice(0, 5);
  return s;
}

async function settleInto(r: ScenarioResult, world: World, auditor: Auditor, from: number): Promise<void> {
  await world.removeStrayRequests();
  // (an `init` node a handler left when its session died is reaped 60 s after its creation)
  const settled = await world.settle(90_000);
  r.leaked = { servers: settled.leaks.servers.length, nodes: settled.leaks.nodes.length, requests: settled.leaks.requests.length, other: 0 };
  r.details.leaks = settled.leaks;
  const v = auditor.violations.slice(from);
  if (v.length > 0) r.problems.push(...v.map((x) => `illegal transition: ${x}`));
}

export async function runZkEnsemble(o: ZkEnsembleOptions): Promise<ScenarioResult[]> {
  const ensemble = new ZkEnsemble();
  const results: ScenarioResult[] = [];
  let world: World | null = null;
  let auditor: Auditor | null = null;
  try {
    ensemble.start();
    world = await new World({ zkHosts: ensemble.hosts, prefix: 'np-rel-zk', clientSessionTimeoutMs: 30_000 }).start();
    const w = world;
    auditor = await new Auditor(await w.connect(30_000)).start();
    const audit = auditor;
    w.writeConfig(w.fakeConfig({ labels: [{ name: 'small', minReady: 0 }], faults: { 'boot-delay': o.bootDelay, 'delete-delay': 0.1 } }));
    const procs = Array.from({ length: o.launchers }, () => w.startLauncher());
    await w.waitRegistered(procs);
    const newLoad = (): ZuulLoad => {
      const load = new ZuulLoad(w.zk, { labels: ['small'], concurrency: o.concurrency, holdMs: o.holdMs, timeoutMs: 120_000 });
      load.start();
      return load;
    };
    const loadText = (s: ReturnType<typeof summarize>, secs: number) =>
      `3-member ensemble, ${o.launchers} launcher processes, ${o.concurrency} Zuul jobs at once, ${s.total} requests in ${secs} s`;

    const part = (x: 'A' | 'B' | 'C'): boolean => !o.parts || o.parts.includes(x);
    // ---- A: one member stopped ----
    if (part('A')) {
      const r = newResult('ZooKeeper: one member stopped');
      const t0 = Date.now();
      const auditFrom = audit.violations.length;
      const load = newLoad();
      await sleep(o.baselineMs);
      const leader = ensemble.leader();
      const followers = [1, 2, 3].filter((n) => n !== leader);
      const conns = await Promise.all(followers.map(async (n) => [n, await ensemble.connections(n)] as const));
      conns.sort((a, b) => b[1] - a[1]);
      const member = conns[0]?.[0] ?? followers[0] ?? 1;
      const owners = await registrationOwners(w);
      const baselineGap = longestGap(load.outcomes, t0 + 1000, Date.now());
      const tStop = Date.now();
      ensemble.stopMember(member);
      await sleep(o.memberDownMs);
      const tRestart = Date.now();
      ensemble.startMember(member);
      await sleep(o.baselineMs);
      const outcomes = await load.stop();
      const ownersAfter = await registrationOwners(w);
      const s = fillCounts(r, outcomes);
      for (const [id, owner] of owners) {
        if (ownersAfter.get(id) !== owner) r.problems.push(`launcher ${id} lost its session (registration re-created)`);
      }
      const gap = longestGap(outcomes, tStop, tRestart);
      const inFlight = outcomes.filter((x) => x.submittedAt < tStop && (x.answeredAt ?? Infinity) > tStop);
      const inFlightMax = Math.max(0, ...inFlight.map((x) => (x.answeredAt ?? Date.now()) - tStop));
      await settleInto(r, w, audit, auditFrom);
      r.load = loadText(s, Math.round((Date.now() - t0) / 1000));
      r.faults = `member ${member} (a follower serving ${conns[0]?.[1] ?? 0} clients) stopped for ${Math.round(o.memberDownMs / 1000)} s, then restarted`;
      r.recoveryMs = inFlightMax;
      r.recoveryWhat = 'longest wait of a request in flight when the member stopped';
      r.bounds.push({ what: 'longest gap between answers while the member is down ≤ the session timeout (no pause)', limitMs: LAUNCHER_SESSION_TIMEOUT_MS, measuredMs: gap });
      r.details = { ...r.details, member, clientsOnMember: conns[0]?.[1] ?? 0, longestGapMs: gap, baselineGapMs: baselineGap, latency_ms: s.latency_ms, sessionsKept: r.problems.every((p) => !p.includes('lost its session')) };
      r.seconds = Math.round((Date.now() - t0) / 100) / 10;
      results.push(r);
    }

    // ---- B: the leader restarted ----
    if (part('B')) {
      const r = newResult('ZooKeeper: leader restarted');
      const t0 = Date.now();
      const auditFrom = audit.violations.length;
      const load = newLoad();
      await sleep(o.baselineMs);
      const leader = ensemble.leader();
      const tStop = Date.now();
      ensemble.stopMember(leader);
      const tStopped = Date.now();
      // each launcher serves again: a request submitted after the stop, answered with a node it launched
      const servedAgain = new Map<string, number>();
      const pending = (): LauncherProcess[] => procs.filter((p) => !servedAgain.has(p.name));
      try {
        await waitUntil('every launcher serving again', () => {
          for (const p of pending()) {
            const first = load.outcomes.find((x) => x.state === 'fulfilled' && x.submittedAt >= tStop && x.launchers.some((l) => p.owns(l)));
            if (first?.answeredAt) servedAgain.set(p.name, first.answeredAt - tStop);
          }
          return pending().length === 0;
        }, 60_000, 50);
      } catch {
        r.problems.push(`launchers not serving 60 s after the leader stopped: ${pending().map((p) => p.name).join(', ')}`);
      }
      const newLeader = (() => { try { return ensemble.leader(); } catch { return null; } })();
      const tRestart = Date.now();
      ensemble.startMember(leader);
      const rejoinMs = Date.now() - tRestart;
      await sleep(o.baselineMs);
      const outcomes = await load.stop();
      const s = fillCounts(r, outcomes);
      const reconnect: Record<string, number | null> = {};
      for (const p of procs) {
        const ev = sessionEvents(p, tStop - 50).find(([, st]) => st === 'connected');
        reconnect[p.name] = ev ? ev[0] - tStop : null;
      }
      await settleInto(r, w, audit, auditFrom);
      const worst = servedAgain.size === procs.length ? Math.max(...servedAgain.values()) : null;
      r.load = loadText(s, Math.round((Date.now() - t0) / 1000));
      r.faults = `leader (member ${leader}) stopped (${tStopped - tStop} ms to stop), member ${newLeader ?? '?'} elected, old leader restarted`;
      r.recoveryMs = worst;
      r.recoveryWhat = 'leader stop to every launcher serving a new request again';
      r.bounds.push({ what: 'every launcher serves again within the session timeout + 5 s', limitMs: LAUNCHER_SESSION_TIMEOUT_MS + 5_000, measuredMs: worst });
      r.details = { ...r.details, leader, newLeader, servedAgainMs: Object.fromEntries(servedAgain), reconnectMs: reconnect, oldLeaderRejoinMs: rejoinMs, longestGapMs: longestGap(outcomes, tStop, tRestart), latency_ms: s.latency_ms };
      r.seconds = Math.round((Date.now() - t0) / 100) / 10;
      results.push(r);
    }

    // ---- C: a forced session expiry ----
    if (part('C')) {
      const r = newResult('ZooKeeper: session expiry forced');
      const t0 = Date.now();
      const auditFrom = audit.violations.length;
      const load = newLoad();
      await sleep(o.baselineMs);
      let victim: LauncherProcess | null = null;
      await waitUntil('a launcher with launches in flight', async () => {
        const nodes = await w.nodes();
        victim = procs.find((p) => nodes.some((n) => n.state === 'building' && p.owns(n.launcher))) ?? null;
        return victim !== null;
      }, 30_000, 20);
      const frozen = victim as LauncherProcess | null;
      if (frozen === null) throw new Error('no victim');
      const owners = await registrationOwners(w);
      const itsIds = [...owners.keys()].filter((id) => id.includes(frozen.idFragment));
      const itsNodes = (await w.nodes()).filter((n) => frozen.owns(n.launcher));
      const tFreeze = Date.now();
      frozen.pause();
      await waitUntil('the frozen launcher\'s session expired', async () =>
        (await w.zk.getRegisteredLaunchers()).every((l) => !l.id.includes(frozen.idFragment)), o.freezeMs + 20_000, 50);
      const tExpired = Date.now();
      await sleep(Math.max(0, tFreeze + o.freezeMs - Date.now()));
      const tResume = Date.now();
      frozen.resume();
      // re-registered in a new session
      let reRegisteredMs: number | null = null;
      try {
        await waitUntil('re-registration in a new session', async () => {
          const now = await registrationOwners(w);
          return itsIds.every((id) => now.has(id) && now.get(id) !== owners.get(id));
        }, 30_000, 50);
        reRegisteredMs = Date.now() - tResume;
      } catch {
        r.problems.push('the launcher did not re-register after its session expired');
      }
      // and serves again
      let servesAgainMs: number | null = null;
      try {
        await waitUntil('the resumed launcher serving', () => load.outcomes.some((x) => x.state === 'fulfilled' && x.submittedAt >= tResume && x.launchers.some((l) => frozen.owns(l))), 30_000, 50);
        const first = load.outcomes.find((x) => x.state === 'fulfilled' && x.submittedAt >= tResume && x.launchers.some((l) => frozen.owns(l)));
        servesAgainMs = (first?.answeredAt ?? Date.now()) - tResume;
      } catch {
        r.problems.push('the launcher did not serve again after its session expired');
      }
      await sleep(o.baselineMs);
      const outcomes = await load.stop();
      const s = fillCounts(r, outcomes);
      const inFlight = outcomes.filter((x) => x.submittedAt < tFreeze && (x.answeredAt ?? Infinity) > tFreeze);
      await settleInto(r, w, audit, auditFrom);
      r.load = loadText(s, Math.round((Date.now() - t0) / 1000));
      r.faults = `launcher frozen (SIGSTOP) ${Math.round(o.freezeMs / 1000)} s > session timeout with ${itsNodes.filter((n) => n.state === 'building').length} launches in flight, then resumed`;
      r.recoveryMs = reRegisteredMs;
      r.recoveryWhat = 'resume to re-registration in a new session';
      r.details = { ...r.details, freezeToExpiryMs: tExpired - tFreeze, reRegisteredMs, servesAgainMs, requestsInFlightAtFreeze: inFlight.length, longestWaitOfThoseMs: Math.max(0, ...inFlight.map((x) => (x.answeredAt ?? Date.now()) - tFreeze)), latency_ms: s.latency_ms };
      r.seconds = Math.round((Date.now() - t0) / 100) / 10;
      results.push(r);
    }
    return results;
  } finally {
    auditor?.stop();
    await world?.close();
    ensemble.destroy();
  }
}
