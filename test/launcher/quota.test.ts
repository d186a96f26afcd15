// Quota, capacity and cloud-fault scenarios of §9.1 on the fake provider, real ZooKeeper.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { newNode, newNodeRequest, type Node, type NodeRequest } from '@nodepool-ts/core/model';
import { paths, type ZooKeeper } from '@nodepool-ts/core/zk';
import { Launcher } from '@nodepool-ts/launcher';
import { loadConfig } from '@nodepool-ts/core/config';
import type { FakeProviderManager } from '@nodepool-ts/driver-fake';
import { fakeConfig, testEnv, waitFor, type TestEnv } from '../helpers/harness.js';
import { startLauncher } from '../helpers/launcher.js';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function setup(yaml: (env: TestEnv) => string): Promise<{ zk: ZooKeeper; launcher: Launcher; cloud: FakeProviderManager }> {
  const { zk, launcher } = await startLauncher(cleanups, yaml, { watchIntervalMs: 0 });
  return { zk, launcher, cloud: launcher.manager('fake-provider') as unknown as FakeProviderManager };
}

const submit = (zk: ZooKeeper, types: string[], extra: Partial<NodeRequest> = {}, prio = '200') =>
  zk.submitNodeRequest(newNodeRequest({ node_types: types, requestor: 'quota-test', ...extra }), prio);

const waitDone = (zk: ZooKeeper, id: string) => waitFor(`request ${id} done`, async () => {
  const r = await zk.getNodeRequest(id);
  return r && (r.state === 'fulfilled' || r.state === 'failed') ? r : null;
});

async function release(zk: ZooKeeper, req: NodeRequest): Promise<void> {
  for (const id of req.nodes) {
    const n = await zk.getNode(id);
    if (!n) continue;
    await zk.lockNode(n, { blocking: true, timeoutMs: 5000 });
    n.state = 'used';
    await zk.storeNode(n);
    await zk.unlockNode(n);
  }
  await zk.deleteNodeRequest(req.id ?? '');
}

test('cloud instance quota pauses a request until a node is freed', async () => {
  const { zk } = await setup((env) => fakeConfig(env, { providerExtra: '    quota:\n      instances: 1\n' }));
  const first = await waitDone(zk, await submit(zk, ['fake-label']));
  assert.equal(first.state, 'fulfilled');
  const second = await submit(zk, ['fake-label']);
  await waitFor('second pending', async () => (await zk.getNodeRequest(second))?.state === 'pending');
  await release(zk, first);
  assert.equal((await waitDone(zk, second)).state, 'fulfilled');
});

test('pool max-cores: a request larger than the pool can ever hold is declined', async () => {
  const { zk } = await setup((env) => fakeConfig(env, { poolExtra: '        max-cores: 6\n' }));
  const req = await waitDone(zk, await submit(zk, ['fake-label', 'fake-label']));
  assert.equal(req.state, 'failed');
});

test('a disabled pool (max-servers 0) declines, so the request fails', async () => {
  const { zk } = await setup((env) => fakeConfig(env).replace('max-servers: 96', 'max-servers: 0'));
  assert.equal((await waitDone(zk, await submit(zk, ['fake-label']))).state, 'failed');
});

test('unexpected cloud "quota exceeded" aborts the node; the request is served once quota returns', async () => {
  const { zk, cloud, launcher } = await setup((env) => fakeConfig(env));
  cloud.setFaults({ quotaExceeded: true });
  let aborted = 0;
  launcher.events.on('launch', (_node, _provider, state) => {
    if (state === 'aborted') aborted++;
  });
  const id = await submit(zk, ['fake-label']);
  await waitFor('an aborted launch', () => aborted > 0);
  assert.equal((await zk.getNodeRequest(id))?.state, 'pending');
  cloud.setFaults({ quotaExceeded: false });
  const req = await waitDone(zk, id);
  assert.equal(req.state, 'fulfilled');
  await waitFor('aborted node reaped', async () => (await zk.getNodes()).every((n) => n.state !== 'aborted'));
  assert.equal((await cloud.listServers()).filter((s) => s.status !== 'DELETED').length, 1, 'only one server');
});

test('servers that go to ERROR are retried; leftovers are deleted', async () => {
  const { zk, cloud } = await setup((env) => fakeConfig(env, { providerExtra: '    launch-retries: 3\n' }));
  cloud.setFaults({ errorRate: 1 });
  const id = await submit(zk, ['fake-label']);
  const req = await waitDone(zk, id);
  assert.equal(req.state, 'failed');
  await waitFor('every ERROR server deleted', async () =>
    (await cloud.listServers()).filter((s) => s.status !== 'DELETED').length === 0 && (await zk.getNodes()).length === 0);
  cloud.setFaults({ errorRate: 0 });
  assert.equal((await waitDone(zk, await submit(zk, ['fake-label']))).state, 'fulfilled');
});

test('launch-circuit-breaker: failed launches in a row suspend launching; ready nodes still go out; a trial reopens', async () => {
  const { zk, cloud, launcher } = await setup((env) => fakeConfig(env, {
    labels: [{ name: 'fake-label', minReady: 1 }],
    providerExtra: '    launch-retries: 1\n    launch-circuit-breaker:\n      failures: 2\n      cooldown: 1\n      max-cooldown: 2\n',
  }));
  const changes: { state: string; retryAt: number | null; at: number }[] = [];
  launcher.events.on('circuit', (c) => changes.push({ state: c.state, retryAt: c.retryAt, at: Date.now() }));
  let launches = 0;
  launcher.events.on('launch', () => launches++);
  await waitFor('a min-ready node', async () => (await zk.getNodes()).some((n) => n.state === 'ready'));
  cloud.setFaults({ errorRate: 1 });
  // the ready node is handed out; min-ready's replacements fail twice in a row: the circuit opens
  const first = await waitDone(zk, await submit(zk, ['fake-label']));
  assert.equal(first.state, 'fulfilled');
  await waitFor('the circuit opens', () => changes.some((c) => c.state === 'open'));
  assert.equal(launcher.launchCircuit('fake-provider')?.state === 'closed', false);
  const prom = (await launcher.metrics?.prometheus())?.body ?? '';
  assert.match(prom, /nodepool_provider_launch_circuit_open\{provider="fake-provider"\} 1/);
  // while open, a request that needs a launch is declined without touching the cloud
  const before = launches;
  const opened = changes.find((c) => c.state === 'open');
  const second = await waitDone(zk, await submit(zk, ['fake-label']));
  assert.equal(second.state, 'failed');
  assert.deepEqual(second.declined_by, [`test-${process.pid}-PoolWorker.fake-provider-main`]);
  if (opened?.retryAt !== null && opened !== undefined && Date.now() < opened.retryAt - 100) {
    assert.equal(launches, before, 'no launch while the circuit is open');
  }
  // the trial after the cooldown fails too: open again, for twice as long (capped at 2 s)
  await waitFor('the trial fails and reopens', () => changes.filter((c) => c.state === 'open').length >= 2, 20_000);
  const reopened = changes.filter((c) => c.state === 'open')[1];
  assert.ok(reopened?.retryAt !== null && reopened !== undefined);
  assert.ok(Math.abs((reopened.retryAt ?? 0) - reopened.at - 2000) < 100, 'the second wait is doubled');
  // the cloud recovers: the next trial succeeds, the circuit closes, requests are served again
  cloud.setFaults({ errorRate: 0 });
  await waitFor('the circuit closes', () => changes.at(-1)?.state === 'closed', 20_000);
  assert.equal((await waitDone(zk, await submit(zk, ['fake-label']))).state, 'fulfilled');
});

test('launch-circuit-breaker: max-cooldown shorter than cooldown is refused naming the key', async () => {
  const env = testEnv();
  cleanups.push(() => env.cleanup());
  const file = env.write('nodepool.yaml', fakeConfig(env, {
    providerExtra: '    launch-circuit-breaker:\n      cooldown: 100\n      max-cooldown: 10\n',
  }));
  await assert.rejects(loadConfig(file), (err: Error) => {
    assert.match(err.message, /nodepool\.yaml/);
    assert.match(err.message, /providers\[0\]\.launch-circuit-breaker\.max-cooldown/);
    assert.match(err.message, /max-cooldown \(10\) of provider "fake-provider" is shorter than its cooldown \(100\)/);
    return true;
  });
});

test('a failing server delete keeps the node in deleting and is retried', async () => {
  const { zk, cloud, launcher } = await setup((env) => fakeConfig(env));
  const req = await waitDone(zk, await submit(zk, ['fake-label']));
  cloud.setFaults({ deleteFailureRate: 1 });
  await release(zk, req);
  const nodeId = req.nodes[0] ?? '';
  await waitFor('node deleting', async () => (await zk.getNode(nodeId))?.state === 'deleting');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await zk.getNode(nodeId))?.state, 'deleting', 'record kept while the cloud refuses');
  cloud.setFaults({ deleteFailureRate: 0 });
  void launcher;
  await waitFor('node removed after retry', async () => (await zk.getNode(nodeId)) === null, 20_000);
});

test('min-ready at capacity is declined; a wedged pool deletes its oldest unused node', async () => {
  const { zk } = await setup((env) => fakeConfig(env, {
    labels: [{ name: 'fake-label', minReady: 2 }, { name: 'other' }],
  }).replace('max-servers: 96', 'max-servers: 2'));
  const freeReady = async (label: string) => (await zk.getNodes())
    .filter((n) => n.state === 'ready' && n.allocated_to === null && n.type.includes(label));
  await waitFor('pool full of min-ready nodes', async () => (await freeReady('fake-label')).length === 2);
  const req = await waitDone(zk, await submit(zk, ['other']));
  assert.equal(req.state, 'fulfilled', 'an unused ready node was deleted to make room');
  assert.deepEqual((await zk.getNode(req.nodes[0] ?? ''))?.type, ['other']);
});

test('lower relative_priority is served first within a priority', async () => {
  const { zk, launcher } = await setup((env) => fakeConfig(env).replace('max-servers: 96', 'max-servers: 1'));
  const blocker = await waitDone(zk, await submit(zk, ['fake-label']));
  const late = await submit(zk, ['fake-label'], { relative_priority: 5 });
  await waitFor('paused on the first', async () => (await zk.getNodeRequest(late))?.state === 'pending');
  const early = await submit(zk, ['fake-label'], { relative_priority: 0 });
  void launcher;
  await release(zk, blocker);
  const first = await waitDone(zk, late);
  assert.equal(first.state, 'fulfilled', 'the paused request keeps its place');
  await release(zk, first);
  assert.equal((await waitDone(zk, early)).state, 'fulfilled');
});

test('max-concurrency 0 handles nothing; pool node-attributes land on nodes', async () => {
  const { zk } = await setup((env) => fakeConfig(env, {
    providerExtra: '    max-concurrency: 0\n',
  }));
  const id = await submit(zk, ['fake-label']);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await zk.getNodeRequest(id))?.state, 'requested');
  const env2 = await setup((env) => fakeConfig(env, { poolExtra: '        node-attributes:\n          executor-zone: vpn\n' }));
  const req = await waitDone(env2.zk, await submit(env2.zk, ['fake-label']));
  assert.deepEqual((await env2.zk.getNode(req.nodes[0] ?? ''))?.attributes, { 'executor-zone': 'vpn' });
});

test('an empty node znode is removed by cleanup', async () => {
  const { zk, launcher } = await setup((env) => fakeConfig(env));
  const n: Node = newNode({ state: 'ready', provider: 'fake-provider', pool: 'main', type: ['fake-label'] });
  await zk.storeNode(n);
  await zk.setData(paths.node(n.id ?? ''), Buffer.alloc(0));
  await launcher.runCleanup();
  await waitFor('empty znode gone', async () => !(await zk.exists(paths.node(n.id ?? ''))));
});

test('a burst of requests never launches past max-servers', async () => {
  const { zk, cloud } = await setup((env) => fakeConfig(env).replace('max-servers: 96', 'max-servers: 3'));
  const ids = [];
  for (let i = 0; i < 12; i++) ids.push(await submit(zk, ['fake-label']));
  let peak = 0;
  const done = new Set<string>();
  while (done.size < 3) {
    const servers = (await cloud.listServers()).filter((s) => s.status !== 'DELETED').length;
    peak = Math.max(peak, servers, (await zk.getNodes()).length);
    for (const id of ids) if ((await zk.getNodeRequest(id))?.state === 'fulfilled') done.add(id);
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(peak <= 3, `at most 3 nodes/servers at once, saw ${peak}`);
});

test('provider priority (Nodepool 6.1): the preferred pool serves first, the next one once it is paused at capacity', async () => {
  const pool = (name: string, extra: string) => `  - name: ${name}
    driver: fake
    rate: 0.001
${extra}    cloud-images:
      - name: fake-image
    pools:
      - name: main
        max-servers: MAX
        labels:
          - name: fake-label
            cloud-image: fake-image
            min-ram: 8192
`;
  const { zk } = await setup((env) => `${env.zkYaml}
labels:
  - name: fake-label
    min-ready: 0
providers:
${pool('dear', '').replace('max-servers: MAX', 'max-servers: 10\n        priority: 2')}${pool('cheap', '    priority: 1\n').replace('MAX', '2')}`);
  const registered = () => zk.getRegisteredLaunchers();
  await waitFor('both pools registered with their priority', async () => {
    const ls = await registered();
    return ls.length === 2 && ls.every((l) => l.paused === false)
      && ls.map((l) => `${l.provider_name}:${l.priority}`).sort().join() === 'cheap:1,dear:2';
  });
  const providerOf = async (req: NodeRequest) => (await zk.getNode(req.nodes[0] ?? ''))?.provider;
  const first = await waitDone(zk, await submit(zk, ['fake-label']));
  const second = await waitDone(zk, await submit(zk, ['fake-label']));
  assert.deepEqual([await providerOf(first), await providerOf(second)], ['cheap', 'cheap'], 'the pool of priority 1 serves while it can');
  // the third waits on cheap (full: it pauses, and says so in its registration) ...
  const third = await submit(zk, ['fake-label']);
  await waitFor('cheap paused', async () => (await registered()).find((l) => l.provider_name === 'cheap')?.paused === true);
  assert.equal((await zk.getNodeRequest(third))?.state, 'pending');
  // ... and the next goes to the pool of priority 2
  const fourth = await waitDone(zk, await submit(zk, ['fake-label']));
  assert.equal(await providerOf(fourth), 'dear');
  await release(zk, first);
  assert.equal(await providerOf(await waitDone(zk, third)), 'cheap');
  await waitFor('cheap resumed', async () => (await registered()).find((l) => l.provider_name === 'cheap')?.paused === false);
});

test('tenant-resource-limits (Nodepool 4.3): a tenant at its limit waits, other tenants and tenant-less requests do not', async () => {
  const { zk } = await setup((env) => fakeConfig(env, { top: 'tenant-resource-limits:\n  - tenant-name: tenant-a\n    max-servers: 1\n' }));
  const forTenant = (tenant: string) => submit(zk, ['fake-label'], { extra: { tenant_name: tenant } });
  const first = await waitDone(zk, await forTenant('tenant-a'));
  assert.equal(first.state, 'fulfilled');
  const raw = JSON.parse((await zk.getData(paths.node(first.nodes[0] ?? '')))?.toString() ?? '{}') as Record<string, unknown>;
  assert.equal(raw.tenant_name, 'tenant-a', "the node records the request's tenant, as Nodepool's does");
  const second = await forTenant('tenant-a');
  assert.equal((await waitDone(zk, await forTenant('tenant-b'))).state, 'fulfilled');
  const untenanted = await waitDone(zk, await submit(zk, ['fake-label']));
  assert.equal(untenanted.state, 'fulfilled');
  const plain = JSON.parse((await zk.getData(paths.node(untenanted.nodes[0] ?? '')))?.toString() ?? '{}') as Record<string, unknown>;
  assert.ok(!('tenant_name' in plain), 'a 3.x request leaves the 3.x node JSON as it was');
  const waiting = await zk.getNodeRequest(second);
  assert.equal(waiting?.state, 'requested', 'deferred: neither taken nor declined');
  assert.deepEqual(waiting?.declined_by, []);
  await release(zk, first);
  assert.equal((await waitDone(zk, second)).state, 'fulfilled');
});

test('a label that cannot be launched gets min-ready requests at a growing interval, not at once; success starts over', async () => {
  const { zk, cloud, launcher } = await setup((env) => fakeConfig(env, {
    labels: [{ name: 'fake-label', minReady: 1 }],
    providerExtra: '    launch-retries: 1\n',
  }));
  await waitFor('a min-ready node', async () => (await zk.getNodes()).some((n) => n.state === 'ready'));
  // every boot ends in ERROR from now on; Zuul takes the ready node, min-ready must replace it
  cloud.setFaults({ errorRate: 1 });
  const submitted: number[] = [];
  const seen = new Set<string>();
  launcher.events.on('request', (id, req) => {
    if (req?.requestor !== 'NodePool:min-ready' || seen.has(id)) return;
    seen.add(id);
    submitted.push(Date.now());
  });
  const taken = await waitDone(zk, await submit(zk, ['fake-label']));
  assert.equal(taken.state, 'fulfilled');
  await new Promise((r) => setTimeout(r, 5_000));
  // without a wait this was a new request every few milliseconds (hundreds in 5 s); with it:
  // at once, then after 1 s, 2 s (and 4 s, just outside the window)
  assert.ok(submitted.length >= 2 && submitted.length <= 4, `${submitted.length} min-ready requests in 5 s`);
  const gaps = submitted.slice(1).map((t, i) => t - (submitted[i] ?? t));
  assert.ok((gaps[0] ?? 0) >= 900, `first wait ${gaps[0]} ms`);
  if (gaps.length > 1) assert.ok((gaps[1] ?? 0) >= 1.5 * (gaps[0] ?? 0), `waits grow: ${gaps.join(', ')} ms`);
  // the cloud recovers: the next attempt (within the current 4 s wait) fills the pool again
  cloud.setFaults({ errorRate: 0 });
  await waitFor('min-ready refilled, its wait cleared', async () => launcher.minReadyRetryAt('fake-label') === 0
    && (await zk.getNodes()).some((n) => n.state === 'ready' && n.allocated_to === null), 15_000);
});
