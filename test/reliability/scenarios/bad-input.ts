// Scenario 6: bad input at scale while the launchers serve a steady load — N malformed request
// znodes (garbage, wrong JSON types, requests without node types), N malformed node znodes, and
// a corrupted config reload (broken YAML, then a schema error). Each bad request must be answered
// `failed` with a log line naming it, each bad node logged once and left alone, good requests
// keep being served, and the previous good config stays in force.
import { newNodeRequest } from '@nodepool-ts/core/model';
import { mapLimit, paths } from '@nodepool-ts/core/zk';
import { ZuulLoad, pct, summarize, zkRetry } from '../../../bench/zuul-client.js';
import { Auditor } from '../lib/audit.js';
import { newResult, type ScenarioResult } from '../lib/result.js';
import { World, sleep, waitUntil } from '../lib/world.js';

export interface BadInputOptions {
  launchers: number;
  concurrency: number;
  /** malformed request znodes and malformed node znodes, each */
  count: number;
  baselineMs: number;
  holdMs: number;
}

export const CI_BAD_INPUT: BadInputOptions = { launchers: 2, concurrency: 4, count: 1000, baselineMs: 3_000, holdMs: 100 };

const BAD_REQUEST_DATA = ['garbage{', '[1, 2]', '"a string"', '12', '{"state": 7}', '{"node_types": "x"}', 'null', '\u00ff\u00fe'];
const BAD_NODE_DATA = ['garbage{', '[1, 2]', '"a string"', '12', '{"state": 7}', '{"state": "bogus"}', 'null'];

export async function runBadInput(o: BadInputOptions): Promise<ScenarioResult> {
  const r = newResult(`bad input: ${o.count} malformed requests + ${o.count} malformed nodes, corrupted config`);
  const t0 = Date.now();
  const world = await new World({ prefix: 'np-rel-bad' }).start();
  const auditor = await new Auditor(await world.connect()).start();
  try {
    const good = world.fakeConfig({ labels: [{ name: 'small', minReady: 1 }], faults: { 'boot-delay': 0.3, 'delete-delay': 0.1 } });
    world.writeConfig(good);
    const procs = Array.from({ length: o.launchers }, () => world.startLauncher());
    await world.waitRegistered(procs);
    const load = new ZuulLoad(world.zk, { labels: ['small'], concurrency: o.concurrency, holdMs: o.holdMs, timeoutMs: 180_000 });
    load.start();
    await sleep(o.baselineMs);
    const zk = world.zk;

    // ---- malformed requests: garbage data and requests without node types ----
    const tInject = Date.now();
    const badRequests = await mapLimit(Array.from({ length: o.count }, (_, i) => i), 32, async (i) => {
      if (i % 10 === 9) {
        // well-formed JSON, but a request for nothing
        return zk.submitNodeRequest(newNodeRequest({ node_types: [], requestor: 'bad-input' }), '200');
      }
      const data = Buffer.from(BAD_REQUEST_DATA[i % BAD_REQUEST_DATA.length] ?? 'x', 'latin1');
      return paths.basename(await zk.create(paths.requestPrefix('200'), data, 'ephemeral_sequential', true));
    });
    // ---- malformed node znodes (persistent: nobody's, so nobody may delete them) ----
    const badNodes = await mapLimit(Array.from({ length: o.count }, (_, i) => i), 32, async (i) => {
      const data = Buffer.from(BAD_NODE_DATA[i % BAD_NODE_DATA.length] ?? 'x', 'latin1');
      return paths.basename(await zk.create(paths.nodePrefix, data, 'persistent_sequential', true));
    });
    const tInjected = Date.now();

    // every bad request answered `failed`
    let tRejected: number | null = null;
    const unanswered = async (): Promise<string[]> => {
      const states = await mapLimit(badRequests, 32, async (id) => {
        const req = await zkRetry(zk, () => zk.getNodeRequest(id));
        return req?.state === 'failed' ? null : id;
      });
      return states.filter((x): x is string => x !== null);
    };
    try {
      await waitUntil('every malformed request failed', async () => (await unanswered()).length === 0, 120_000, 500);
      tRejected = Date.now();
    } catch {
      const left = await unanswered();
      r.problems.push(`${left.length} malformed requests not answered \`failed\`, e.g. ${left.slice(0, 5).join(', ')}`);
    }

    // ---- a corrupted config, then one that breaks the schema ----
    const labelsOf = async (): Promise<string> => (await zk.getRegisteredLaunchers()).map((l) => l.supported_labels.join(',')).sort().join(' ');
    const labelsBefore = await labelsOf();
    const failedReloads = (): number => world.launcherLog('error').filter((x) => x.line.msg.startsWith('Configuration reload failed')).length;
    const tCorrupt = Date.now();
    world.writeConfig('providers: [ this is : not yaml\n  - {');
    await waitUntil('broken YAML rejected by every launcher', () => failedReloads() >= o.launchers, 30_000, 100);
    world.writeConfig(good.replace(/max-servers: \d+/, 'max-servers: lots'));
    await waitUntil('schema error rejected by every launcher', () => failedReloads() >= 2 * o.launchers, 30_000, 100);
    const servedWhileBroken = load.outcomes.filter((x) => x.state === 'fulfilled' && x.submittedAt >= tCorrupt).length;
    await sleep(1000);
    const labelsAfter = await labelsOf();
    if (labelsAfter !== labelsBefore) r.problems.push(`registrations changed under a broken config: ${labelsBefore} -> ${labelsAfter}`);
    world.writeConfig(good);
    await sleep(2000);
    const outcomes = await load.stop();

    // each bad input named in a log line
    const lines = world.launcherLog('warn').map((x) => x.line);
    const namedRequests = new Set<string>();
    const namedNodes = new Set<string>();
    for (const l of lines) {
      if (typeof l.request === 'string') namedRequests.add(l.request);
      if (typeof l.node === 'string' && l.msg.startsWith('Ignoring malformed node znode')) namedNodes.add(l.node);
    }
    for (const l of world.launcherLog('info').map((x) => x.line)) {
      if (typeof l.request === 'string' && /no node_types/.test(l.msg)) namedRequests.add(l.request);
    }
    const unnamedRequests = badRequests.filter((id) => !namedRequests.has(id));
    const unnamedNodes = badNodes.filter((id) => !namedNodes.has(id));
    if (unnamedRequests.length > 0) r.problems.push(`${unnamedRequests.length} malformed requests rejected without a log line naming them, e.g. ${unnamedRequests.slice(0, 3).join(', ')}`);
    if (unnamedNodes.length > 0) r.problems.push(`${unnamedNodes.length} malformed nodes never logged, e.g. ${unnamedNodes.slice(0, 3).join(', ')}`);
    const survivors = (await mapLimit(badNodes, 32, (id) => zkRetry(zk, () => zk.getNodeData(id)))).filter((d) => d !== null).length;
    if (survivors !== badNodes.length) r.problems.push(`${badNodes.length - survivors} malformed node znodes were deleted by a launcher (their owner is unknown)`);
    const sample = lines.find((l) => l.msg.startsWith('Failing malformed node request'))?.msg ?? null;
    const sampleNode = lines.find((l) => l.msg.startsWith('Ignoring malformed node znode'))?.msg ?? null;
    const configLine = world.launcherLog('error').find((x) => x.line.msg.startsWith('Configuration reload failed'))?.line.msg ?? null;

    // clean up what we injected, then the usual checks
    await mapLimit(badNodes, 32, (id) => zkRetry(zk, () => zk.deleteRawNode(id)));
    await mapLimit(badRequests, 32, (id) => zkRetry(zk, () => zk.deleteNodeRequest(id)));
    await world.removeStrayRequests();
    const settled = await world.settle(60_000);
    const s = summarize(outcomes);
    if (auditor.violations.length > 0) r.problems.push(...auditor.violations.map((v) => `illegal transition: ${v}`));
    if (!procs.every((p) => p.running)) r.problems.push('a launcher exited');
    if (servedWhileBroken === 0) r.problems.push('no request was served while the config file was broken');
    const lat = (from: number, to: number): number => pct(outcomes.filter((x) => x.latencyMs !== null && x.submittedAt >= from && x.submittedAt < to).map((x) => x.latencyMs ?? 0).sort((a, b) => a - b), 95);

    r.load = `${o.launchers} launcher processes, ${o.concurrency} Zuul jobs at once, ${s.total} good requests`;
    r.faults = `${o.count} malformed request znodes (garbage, wrong types, no node types), ${o.count} malformed node znodes, broken YAML and a schema error in nodepool.yaml`;
    r.requestsTotal = s.total;
    r.requestsLost = s.lost + s.errors;
    r.requestsFailed = s.failed;
    r.doubleAllocated = s.doubleAllocated.length + s.misallocated.length;
    r.leaked = { servers: settled.leaks.servers.length, nodes: settled.leaks.nodes.length, requests: settled.leaks.requests.length, other: 0 };
    r.recoveryMs = tRejected === null ? null : tRejected - tInjected;
    r.recoveryWhat = `injection done to all ${o.count} malformed requests answered \`failed\``;
    r.details = {
      injectMs: tInjected - tInject, servedWhileConfigBroken: servedWhileBroken,
      p95BeforeMs: lat(t0, tInject), p95DuringMs: lat(tInject, tRejected ?? Date.now()), p95AfterMs: lat(tRejected ?? Date.now(), Date.now()),
      sampleRequestLine: sample, sampleNodeLine: sampleNode, sampleConfigLine: configLine,
      latency_ms: s.latency_ms, leaks: settled.leaks,
    };
    return r;
  } finally {
    r.seconds = Math.round((Date.now() - t0) / 100) / 10;
    auditor.stop();
    await world.close();
  }
}
