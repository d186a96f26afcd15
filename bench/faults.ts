// Reliability figures: runs every scenario of test/reliability at a larger scale than CI does,
// prints the results as JSON and writes docs/reliability.md (the table and the details).
//
//   node --import tsx bench/faults.ts               all scenarios but the soak (~15 min)
//   node --import tsx bench/faults.ts --soak        all scenarios and the 10-minute soak
//   node --import tsx bench/faults.ts --only kill,zk --no-write
//   node --import tsx bench/faults.ts --soak --only soak --soak-minutes 30
//   node --import tsx bench/faults.ts --render results.json   docs/reliability.md from the JSON a run printed
//
// Scenarios: kill (launcher kill -9), zk (ensemble), db (MariaDB outage), cloud (fake cloud
// faults), sim (OpenStack simulator faults), builder (builder kill -9), bad (bad input), soak.
// ZooKeeper: $NODEPOOL_TEST_ZK if set, else a private one from scripts/zk.sh (the ensemble and
// MariaDB scenarios always start their own). Exit status 1 when any scenario found a problem.
import { spawnSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fmtMs, violations, type ScenarioResult } from '../test/reliability/lib/result.js';
import { runLauncherKill, CI_LAUNCHER_KILL } from '../test/reliability/scenarios/launcher-kill.js';
import { runZkEnsemble, CI_ZK_ENSEMBLE } from '../test/reliability/scenarios/zk-ensemble.js';
import { runDbOutage, CI_DB_OUTAGE } from '../test/reliability/scenarios/db-outage.js';
import { runCloudFaults, CI_CLOUD_FAULTS, FAULTS } from '../test/reliability/scenarios/cloud-faults.js';
import { runBuilderKill, CI_BUILDER_KILL } from '../test/reliability/scenarios/builder-kill.js';
import { runBadInput, CI_BAD_INPUT } from '../test/reliability/scenarios/bad-input.js';
import { runSoak, SOAK, FLAT_LIMIT_MB, LIVE_HEAP_LIMIT_MB, type DaemonVerdict } from '../test/reliability/scenarios/soak.js';
import { mariadbAvailable } from '../test/reliability/lib/services.js';

const root = resolve(import.meta.dirname, '..');
const { values: opts } = parseArgs({
  options: {
    soak: { type: 'boolean', default: false },
    'soak-minutes': { type: 'string', default: String(SOAK.minutes) },
    only: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    out: { type: 'string', default: join(root, 'docs/reliability.md') },
    render: { type: 'string' },
  },
});

const ALL = ['kill', 'zk', 'db', 'cloud', 'sim', 'builder', 'bad', 'soak'] as const;
type Name = typeof ALL[number];
const only = opts.only ? new Set(opts.only.split(',')) : null;
const wanted = (n: Name): boolean => (only ? only.has(n) : n !== 'soak' || opts.soak === true);

// The bench scale: bigger loads, longer faults than CI.
const SCENARIOS: Record<Name, () => Promise<ScenarioResult[]>> = {
  kill: async () => [await runLauncherKill({ ...CI_LAUNCHER_KILL, concurrency: 16, beforeMs: 10_000, afterMs: 40_000, inFlight: 4 })],
  zk: () => runZkEnsemble({ ...CI_ZK_ENSEMBLE, concurrency: 12, baselineMs: 6_000, memberDownMs: 30_000, freezeMs: 15_000 }),
  db: async () => (mariadbAvailable() ? [await runDbOutage({ ...CI_DB_OUTAGE, concurrency: 8, baselineMs: 10_000, outageMs: 180_000, afterMs: 10_000 })] : []),
  cloud: () => runCloudFaults({ ...CI_CLOUD_FAULTS, concurrency: 10, baselineMs: 5_000, faultMs: 20_000, afterMs: 5_000 }, 'fake'),
  sim: () => runCloudFaults({ ...CI_CLOUD_FAULTS, concurrency: 10, baselineMs: 5_000, faultMs: 20_000, afterMs: 5_000 }, 'openstack-sim'),
  builder: () => runBuilderKill({ ...CI_BUILDER_KILL, concurrency: 6 }),
  bad: async () => [await runBadInput({ ...CI_BAD_INPUT, count: 3000, concurrency: 8 })],
  soak: async () => [await runSoak({ ...SOAK, minutes: Number(opts['soak-minutes']) })],
};

if (opts.render !== undefined) {
  // the document again from a run's printed results (its figures untouched), no scenario run
  const saved = JSON.parse(readFileSync(opts.render, 'utf8')) as Summary;
  writeFileSync(opts.out ?? '', renderDoc(saved));
  process.exit(saved.results.some((r) => verdict(r).length > 0) ? 1 : 0);
}

interface Summary {
  machine: { cores: number; cpu: string; memoryGb: number; node: string };
  minutes: number;
  results: ScenarioResult[];
}

const work = mkdtempSync(join(tmpdir(), 'np-faults-'));
let startedZk = false;
if (!process.env.NODEPOOL_TEST_ZK) {
  const r = spawnSync('bash', [join(root, 'scripts/zk.sh'), 'start', join(work, 'zk')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`could not start ZooKeeper: ${r.stderr}`);
  process.env.NODEPOOL_TEST_ZK = r.stdout.trim();
  startedZk = true;
}

const results: ScenarioResult[] = [];
const t0 = Date.now();
try {
  for (const name of ALL) {
    if (!wanted(name)) continue;
    process.stderr.write(`faults: running ${name} ...\n`);
    try {
      for (const r of await SCENARIOS[name]()) {
        results.push(r);
        const v = verdict(r);
        process.stderr.write(`faults: ${r.scenario}: lost ${r.requestsLost}, leaked ${JSON.stringify(r.leaked)}, recovery ${fmtMs(r.recoveryMs)}${v.length ? `, FAIL: ${v.join(' | ')}` : ', pass'}\n`);
      }
    } catch (err) {
      process.stderr.write(`faults: ${name} crashed: ${(err as Error).stack ?? String(err)}\n`);
      const r = { scenario: name, problems: [`crashed: ${(err as Error).message}`] } as ScenarioResult;
      results.push(r);
    }
  }
} finally {
  if (startedZk) spawnSync('bash', [join(root, 'scripts/zk.sh'), 'stop', join(work, 'zk')]);
  rmSync(work, { recursive: true, force: true });
}

const machine = { cores: cpus().length, cpu: cpus()[0]?.model ?? '?', memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version };
const summary: Summary = { machine, minutes: Math.round((Date.now() - t0) / 6000) / 10, results };
console.log(JSON.stringify(summary, null, 2));
if (!opts['no-write']) writeFileSync(opts.out ?? '', renderDoc(summary));
process.exit(results.some((r) => verdict(r).length > 0) ? 1 : 0);

/** What fails the scenario, judged exactly as its test judges it (lib/result.ts violations). */
function verdict(r: ScenarioResult): string[] {
  if (!r.leaked) return r.problems ?? ['no result'];
  const spec = FAULTS.find((f) => r.scenario.startsWith(f.title));
  return violations(r, { allowFailed: spec?.mayFail ?? false });
}

// ------------------------------------------------------------------------------- docs/reliability.md

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function leakedText(r: ScenarioResult): string {
  const l = r.leaked;
  if (!l) return '?';
  const total = l.servers + l.nodes + l.requests + l.other;
  if (total === 0) return '0';
  return [l.servers ? `${l.servers} servers` : '', l.nodes ? `${l.nodes} nodes` : '', l.requests ? `${l.requests} requests` : '', l.other ? `${l.other} other` : '']
    .filter(Boolean).join(', ');
}

function renderDoc(s: Summary): string {
  const rows = s.results.map((r) => `| ${cell(r.scenario)} | ${cell(r.load ?? '')} | ${cell(r.faults ?? '')} | ${r.requestsLost ?? '?'}`
    + `${r.requestsFailed ? ` (${r.requestsFailed} failed by the cloud)` : ''} | ${leakedText(r)} | ${fmtMs(r.recoveryMs ?? null)}${r.recoveryWhat && r.recoveryWhat !== '–' ? ` (${cell(r.recoveryWhat)})` : ''} | ${verdict(r).length === 0 ? 'pass' : `**FAIL**: ${cell(verdict(r).join('; ')).slice(0, 300)}`} |`);
  const bounds = s.results.flatMap((r) => (r.bounds ?? []).map((b) => `| ${cell(r.scenario)} | ${cell(b.what)} | ${fmtMs(b.limitMs)} | ${fmtMs(b.measuredMs)} |`));
  const soak = s.results.find((r) => r.scenario.startsWith('soak'));
  const verdicts = (soak?.details.verdicts ?? []) as DaemonVerdict[];
  const p95 = soak?.details.p95Ms as { firstThird: number; middleThird: number; lastThird: number; perMinute: number[] } | undefined;
  const soakText = soak
    ? `${soak.load}.

| daemon | RSS per minute (MB) | live heap per minute (MB) | growth | anonymous memory outside the heap per minute (MB) | growth | code pages | flat | fds start → end | timers start → end |
|---|---|---|---|---|---|---|---|---|---|
${verdicts.map((v) => `| ${v.daemon} | ${v.rssPerMinuteMb.join(', ')} | ${(v.liveHeapPerMinuteMb ?? []).join(', ')} | ${v.liveHeapGrowthMb} MB | ${(v.nativePerMinuteMb ?? []).join(', ')} | ${v.nativeGrowthMb} MB | +${v.fileGrowthMb} MB | ${v.rssFlat ? 'yes' : '**no**'} | ${v.fdsStart} → ${v.fdsEnd} | ${v.timersStart} → ${v.timersEnd} |`).join('\n')}

RSS alone is no verdict: it moves by tens of MB with the heap size V8 reserves under allocation
pressure, and the anonymous memory outside the V8 heap (the allocator's arenas, the JIT) rises by
some 20 MB over the first ten minutes or so of a run before it levels off (a 30-minute run,
\`--soak-minutes 30\`, showed the launchers' RSS flat from about the twelfth minute to the
thirtieth), so a 10-minute run still sees the tail of that rise. So "flat" is judged on what a
leak would grow. The *live heap*: once a minute the probe forces a full garbage
collection (the daemons run with \`--expose-gc\` in the soak) and records \`heapUsed\` right after
it, exactly what the daemon keeps alive; its growth over the steady part (after the first
quarter) above ${LIVE_HEAP_LIMIT_MB} MB is a leak. The *anonymous memory outside the V8 heap*
(\`RssAnon\` − \`heapTotal\`: malloc arenas, buffers, stacks): its growth over the second half
above ${FLAT_LIMIT_MB} MB is a trend. File-backed pages (*code pages*: the binary's code) hold no
leak and are only reported. File descriptors come from \`/proc/<pid>/fd\`, timers (live
\`Timeout\` handles) from the probe loaded into each daemon with \`--import\`
(\`test/reliability/lib/probe.mjs\`).

p95 request latency by third of the run: ${p95 ? `${p95.firstThird} / ${p95.middleThird} / ${p95.lastThird} ms; per minute: ${p95.perMinute.join(', ')} ms` : '?'}.
Requests lost ${soak.requestsLost}, nodes in two jobs ${soak.doubleAllocated}, leaked ${leakedText(soak)}; ${verdict(soak).length === 0 ? 'verdict: pass' : `verdict: **FAIL** — ${verdict(soak).join('; ')}`}.`
    : 'Not run by this invocation: `node --import tsx bench/faults.ts --soak` runs it (10 minutes; `--soak-minutes N`).';
  return `# Reliability

What nodepool-ts does when its parts fail, measured on this machine (${s.machine.cores} cores, ${cell(s.machine.cpu)},
${s.machine.memoryGb} GB, Node ${s.machine.node}, shared with other work) by real processes: launchers
(\`nodepool-launcher -f\`), the builder (\`nodepool-builder -f --fake\`), ZooKeeper, MariaDB and the OpenStack
simulator started by the project's scripts, and a Zuul-like client (\`bench/zuul-client.ts\`) holding the load.

**Regenerate this file** (about ${Math.max(1, Math.round(s.minutes))} minutes):

\`\`\`sh
node --import tsx bench/faults.ts --soak      # every scenario at bench scale plus the 10-minute soak
node --import tsx bench/faults.ts             # the same without the soak
\`\`\`

The CI versions of the same scenarios (smaller loads, a 20 s database outage, no soak) are
\`test/reliability/*.test.ts\`, run by \`npm test -- test/reliability\` (a few minutes); each fails
when a request is lost, a node is handed to two jobs, a server, node znode or request is left
behind, a transition no correct launcher makes is seen (see below), or a bound the issue states
is exceeded. The soak as a test: \`NODEPOOL_SOAK=1 npm test -- test/reliability/soak.test.ts\`.

## Results

| scenario | load held | faults injected | requests lost | nodes leaked (left after settling) | recovery time | verdict |
|---|---|---|---|---|---|---|
${rows.join('\n')}

*Requests lost* counts requests never answered or whose znode vanished (Zuul would wait forever);
requests the launchers answered \`failed\` because the cloud would not boot anything are shown in
brackets — that is the correct answer to a cloud that refuses every server, and they stop as soon
as the fault does. *Nodes leaked* counts what is still left behind once the load stopped and
the launchers had a settle time to clean up (60 s, one cleanup cycle; 90 s for the ZooKeeper,
cloud-fault and soak scenarios): servers in the cloud without a node, node znodes not at rest
(anything but READY and unallocated), requests left behind, and (database row) events missing
from the history. Anything counted there, a lost request, a node in two jobs, a failed request
where the fault gives no reason to fail one, or a bound exceeded fails the scenario: the
*verdict* column is the test's own judgement (\`violations()\` in \`test/reliability/lib/result.ts\`).
What a killed launcher had started is judged on the stricter bound below: used or deleted within
one cleanup cycle of its session expiring (when its death becomes visible).

### Bounds the issue states (asserted)

| scenario | bound | limit | measured |
|---|---|---|---|
${bounds.join('\n')}

## Soak

${soakText}

## How each scenario is checked

- **Zuul-like client** (\`bench/zuul-client.ts\`): submits ephemeral requests (each marked, so that a
  create whose reply a dropped connection lost is found, not made twice or counted as lost), waits
  with a watch (and a slow poll, so a watch lost with a connection cannot stall it), locks each node it got and checks
  \`allocated_to\`, deletes the request, marks the nodes in-use, holds them, marks them used. A node
  that appears in two fulfilled requests, or is not allocated to the request that got it, is a
  double allocation.
- **Auditor** (\`test/reliability/lib/audit.ts\`): a watch-fed view of every node and request that
  records transitions a correct launcher never makes — a node brought back from \`deleting\`, a
  request rewritten after it was answered, a READY node whose server changed. That is how "held
  locks not assumed" is checked after a session expiry.
- **Leaks**: the cloud's servers (the fake cloud's state file, or the simulator's admin API)
  against the node znodes; nodes not at rest; requests of the client left behind.
- **Launcher kill -9**: three launcher processes, one killed with launches in flight; its Zuul
  requests must be answered by the others and every server it started must be used, usable or
  deleted within one cleanup cycle (60 s) of its session expiring.
- **ZooKeeper**: a private 3-member ensemble (\`scripts/zk-ensemble.sh\`); a follower stopped (no
  session may be lost, no gap in answers longer than the session timeout), the leader restarted
  (every launcher serves a new request within session timeout + 5 s), one launcher frozen with
  SIGSTOP past its session timeout and resumed (it must re-register in a new session, act on no
  lock it held, and nothing may leak).
- **MariaDB**: a private server (\`scripts/mariadb.sh\`) stopped under load and started again; for
  every node a job got, its \`ready\`, \`deleting\` and removal events and its launch attempt, and
  for every request its \`fulfilled\` event, must be in the database exactly as often as they
  happened (missing ones fail; extra ones are reported as duplicates).
- **Cloud faults**: switched on and off by rewriting nodepool.yaml (fake cloud) or through the
  simulator's admin API; retries must back off (quota pauses and failed deletes: each retry later
  than the one before), stuck deletes must be issued again (the fake cloud completes a stuck delete
  only when it is issued again; the simulator finishes hung deletes by itself once the hang is
  lifted), failed nodes and their servers removed.
- **Builder kill -9**: mid-build (disk-image-create running) and mid-upload (Glance holding the data);
  the killed build must never be uploaded, no node may boot from the half-uploaded image, the locks
  must come free with the dead session, the build and the upload must be retried, and the
  debris (killed build's record and files, stale \`uploading\` record, half-written Glance image)
  removed.
- **Bad input**: malformed request znodes must each be answered \`failed\` with a log line naming
  them, malformed node znodes logged once and left alone (their owner is unknown), good requests
  served throughout, and a broken nodepool.yaml (YAML error, then a schema error) must leave the
  previous configuration — and the launchers' registrations — in force.

## What these scenarios found (fixed in the launcher and the fake cloud)

- kill -9 of a launcher: its \`pending\` requests waited for the next 60 s cleanup cycle; a
  launcher's disappearance (its registration vanishing with its session) now resets them at once
  (takeover went from ~55 s to ~12 s, the session timeout plus a launch).
- forced session expiry: a launcher frozen past its session timeout, once resumed, retried the
  launches it had lost the locks of — booting new servers for nodes other launchers had already
  reaped (leaked until the next cleanup) — and could write to requests it no longer held. Launch
  retries now wait out a suspended session and stop when the node lock is gone; request handlers
  drop a request whose lock died instead of writing to it.
- a cloud delete that never completes held up every other deletion (one DeletedNodeWorker pass
  waited up to 10 minutes for it); deletions now run on their own, failed ones are retried with
  backoff (5 s doubling to 5 min) and accepted-but-stuck ones re-issued with backoff.
- a used node could stay undeleted forever: when Zuul's lock release was notified before the
  DeletedNodeWorker had recorded its watch, the wake-up was lost.
- a config reload that changed a provider aborted the launches under way on it (failing their
  requests); launches now finish on the replaced provider manager, which is stopped after them.
- \`init\` nodes left by a launcher killed (or a session lost) between storing and locking them
  were never reaped; the DeletedNodeWorker now removes unlocked \`init\` nodes whose launcher is gone
  or that nobody locked for 60 s.
- every deleted node left its Lock object registered with the ZooKeeper session (the recursive
  delete took the contender, the object still counted as held): the soak showed it as a steady
  live-heap trend in both launchers; gone since (heap snapshots of both launchers 2.5, 6 and 9.5
  minutes after their start under the soak's load: 39.9 / 39.8, 40.3 / 40.6 and 40.5 / 40.5 MB,
  the difference JIT-compiled code).
- one ZooKeeper member stopped: the requests in flight on the dropped connection fail (connection
  loss, applied or not) while the session and its locks live on. A launcher that met such a
  failure under a lock kept the lock for the life of its session: a DeletedNodeWorker whose read
  of a \`used\` node failed left it locked and undeleted, a pool worker whose read of a
  just-locked request failed left the request locked and unanswered, a handler that could not
  decline kept its request (in 5 runs of this scenario before the fix: \`used\` nodes left locked
  in 2, a request unanswered for 120 s in 1 (logs not kept); CI had once counted a request lost
  here). Reads and writes under a lock are now repeated once the connection is back in the same
  session, every error path releases its lock, a handler that cannot decline lets its request go
  (\`test/launcher/connection-loss.test.ts\`).
- the Zuul-like client counted a request as lost when the reply to its create was lost with a
  dropped connection (the request existed and was served, nobody waited for it); it now finds its
  marked request before creating it again, as Curator's protected create does.
- the soak's memory verdict could fail on memory that is no leak, and pass on a leak: the memory
  outside the V8 heap rises by some 20 MB over the first ten minutes or so and then stays flat (a
  30-minute soak: the launchers' RSS from 126 and 129 MB to 153 and 149 MB by the ninth minute,
  150–158 MB from the tenth to the thirtieth; their live heap 24–25.5 MB throughout), and the live
  heap was taken as the lowest \`heapUsed\` of each minute, which swings by ±5 MB with garbage
  not yet collected (a leak of that size could pass). The live heap is now measured right after a
  forced full collection, once a minute, with a 3 MB limit instead of 8; the memory outside the
  heap is taken from the anonymous pages only.
- fake cloud: a repeated delete of a server whose delete is stuck is now another attempt (as in
  Nova), so a lifted fault lets it finish.

## Known issue (reported, not failed)

A node's removal can be recorded twice in the history: the recursive delete of a node znode
removes the deleting launcher's lock contender before the node itself, so a second launcher can
lock the node in between, find it \`deleted\` and remove (and record) it again. Harmless for the
cloud and for ZooKeeper; the fix belongs in \`ZooKeeper.deleteNode\` (delete contender, lock
directory and node in one multi-op). The database scenario reports the count as
\`eventsDuplicated\`.

## Raw results

\`\`\`json
${JSON.stringify(s, null, 2)}
\`\`\`
`;
}
