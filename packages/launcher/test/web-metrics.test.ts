// statsd with Nodepool's names (§8), checked on a real UDP socket, and the same figures on the
// Prometheus endpoint.
import { test, after, before, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { NODE_STATES, newNodeRequest } from '@nodepool-ts/core/model';
import { paths } from '@nodepool-ts/core/zk';
import { computeAddressableRequests, computeNodeGauges, registrationPool, statsdSafe } from '@nodepool-ts/launcher';
import { fakeConfig, http, launcherWeb, waitFor } from './web-helpers.js';

let sock: Socket;
let lines: string[] = [];
const saved = { host: process.env.STATSD_HOST, port: process.env.STATSD_PORT };

before(async () => {
  sock = createSocket('udp4');
  sock.on('message', (msg) => { lines.push(...msg.toString('utf8').split('\n').filter((l) => l !== '')); });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
  process.env.STATSD_HOST = '127.0.0.1';
  process.env.STATSD_PORT = String(sock.address().port);
});

after(async () => {
  sock.close();
  if (saved.host === undefined) delete process.env.STATSD_HOST; else process.env.STATSD_HOST = saved.host;
  if (saved.port === undefined) delete process.env.STATSD_PORT; else process.env.STATSD_PORT = saved.port;
});

/** The last value sent for a statsd key and type. */
function last(key: string, type: 'g' | 'c' | 'ms'): number | null {
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /^(.+):([^:|]+)\|(g|c|ms)$/.exec(lines[i] ?? '');
    if (m && m[1] === key && m[3] === type) return Number(m[2]);
  }
  return null;
}

function promValue(text: string, series: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return null;
}

test('statsdSafe and the zero-filled gauges follow Nodepool', () => {
  assert.equal(statsdSafe('NodePool:min-ready'), 'NodePool_min-ready');
  assert.equal(statsdSafe('zuul.example.org'), 'zuul_example_org');
  const g = computeNodeGauges([], [{ id: 'x', provider_name: 'p', supported_labels: ['a', 'b'] }]);
  assert.equal(g.size, 11 + 11 + 22);
  for (const s of NODE_STATES) {
    assert.equal(g.get(`nodepool.nodes.${s}`), 0);
    assert.equal(g.get(`nodepool.provider.p.nodes.${s}`), 0);
    assert.equal(g.get(`nodepool.label.a.nodes.${s}`), 0);
  }
});

test('addressable_requests: per registered pool, the requests whose labels it all offers', () => {
  const launchers = [
    { id: 'h-1-PoolWorker.p1-main', provider_name: 'p1', supported_labels: ['a'] },
    { id: 'h-2-PoolWorker.p-2-pool-x', provider_name: 'p-2', supported_labels: ['a', 'b'] },
    { id: 'some-other-launcher', provider_name: 'p3', supported_labels: ['a'] },
  ];
  assert.equal(registrationPool(launchers[0]!), 'main');
  assert.equal(registrationPool(launchers[1]!), 'pool-x');
  assert.equal(registrationPool(launchers[2]!), null, 'a registration without a pool is left out');
  const g = computeAddressableRequests([{ node_types: ['a'] }, { node_types: ['b'] }, { node_types: ['a', 'b'] },
    { node_types: ['c'] }], launchers);
  assert.deepEqual([...g], [
    ['nodepool.provider.p1.pool.main.addressable_requests', 1],
    ['nodepool.provider.p-2.pool.pool-x.addressable_requests', 3],
  ]);
  assert.deepEqual([...computeAddressableRequests([], launchers.slice(0, 1))],
    [['nodepool.provider.p1.pool.main.addressable_requests', 0]], 'zero is sent too');
});

test('addressable_requests follow the requests in ZooKeeper, in statsd and Prometheus', async (t: TestContext) => {
  lines = [];
  const lw = await launcherWeb((env) => fakeConfig(env, { labels: [{ name: 'fake-label' }, { name: 'other-label' }],
    poolLabels: ['fake-label'] }));
  t.after(() => lw.close());
  const key = 'nodepool.provider.fake-provider.pool.main.addressable_requests';
  await waitFor('the gauge at zero', () => last(key, 'g') === 0, 20_000, 50);
  const ok = await lw.zk.submitNodeRequest(newNodeRequest({ node_types: ['fake-label'], requestor: 'zuul' }), '200');
  const other = await lw.zk.submitNodeRequest(newNodeRequest({ node_types: ['fake-label', 'other-label'], requestor: 'zuul' }), '200');
  await waitFor('requests answered', async () => (await lw.zk.getNodeRequest(ok))?.state === 'fulfilled'
    && (await lw.zk.getNodeRequest(other))?.state === 'failed', 20_000, 50);
  await waitFor('the gauge counts the request the pool can address', () => last(key, 'g') === 1, 20_000, 50);
  const prom = await http(`${lw.url}/metrics`);
  assert.equal(promValue(prom.text, 'nodepool_pool_addressable_requests{provider="fake-provider",pool="main"}'), 1);
  await lw.zk.deleteNodeRequest(ok);
  await waitFor('a removed request is no longer counted', () => last(key, 'g') === 0, 20_000, 50);
});

test('launch timers and counters, node gauges and max_servers reach a statsd socket; Prometheus agrees', async (t: TestContext) => {
  lines = [];
  const lw = await launcherWeb((env) => fakeConfig(env, {
    labels: [{ name: 'fake-label', minReady: 2 }], top: 'tenant-resource-limits:\n  - tenant-name: t.1\n    max-cores: 64\n',
  }));
  t.after(() => lw.close());
  await waitFor('min-ready launch stats', () => last('nodepool.launch.requestor.NodePool_min-ready.ready', 'c') !== null, 20_000, 50);
  const node = (await lw.zk.getNodes())[0];
  assert.ok(node?.az, 'fake nodes have an AZ');
  const az = node.az;
  for (const key of ['nodepool.launch.ready', 'nodepool.launch.provider.fake-provider.ready',
    `nodepool.launch.provider.fake-provider.${az}.ready`, 'nodepool.launch.requestor.NodePool_min-ready.ready']) {
    assert.equal(last(key, 'c'), 1, `${key} counter`);
    const ms = last(key, 'ms');
    assert.ok(ms !== null && ms >= 0, `${key} timer`);
  }
  // the stats election winner sends every state for totals, the provider and the label
  await waitFor('node gauges', () => last('nodepool.nodes.ready', 'g') === 2, 20_000, 50);
  for (const s of NODE_STATES) {
    assert.notEqual(last(`nodepool.nodes.${s}`, 'g'), null, s);
    assert.notEqual(last(`nodepool.provider.fake-provider.nodes.${s}`, 'g'), null, s);
    assert.notEqual(last(`nodepool.label.fake-label.nodes.${s}`, 'g'), null, s);
  }
  assert.equal(last('nodepool.provider.fake-provider.nodes.ready', 'g'), 2);
  assert.equal(last('nodepool.label.fake-label.nodes.ready', 'g'), 2);
  assert.equal(last('nodepool.nodes.building', 'g'), 0);
  assert.equal(last('nodepool.provider.fake-provider.max_servers', 'g'), 96);
  assert.equal(last('nodepool.tenant_limits.t_1.cores', 'g'), 64);
  assert.equal(last('nodepool.tenant_limits.t_1.ram', 'g'), null, 'unlimited is not sent');
  assert.equal(lw.launcher.metrics?.isLeader, true);
  // kazoo's Election: a lock contender under /nodepool/elections/stats with "<hostname>-<pid>"
  const contenders = await lw.zk.getChildren(paths.statsElection);
  const data = await Promise.all(contenders.map((c) => lw.zk.getData(`${paths.statsElection}/${c}`)));
  assert.ok(data.some((d) => d?.toString() === `webtest-${process.pid}`));

  const prom = await http(`${lw.url}/metrics`);
  assert.equal(prom.status, 200);
  assert.match(prom.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  for (const s of NODE_STATES) {
    assert.equal(promValue(prom.text, `nodepool_nodes{state="${s}"}`), last(`nodepool.nodes.${s}`, 'g'), s);
    assert.equal(promValue(prom.text, `nodepool_provider_nodes{provider="fake-provider",state="${s}"}`),
      last(`nodepool.provider.fake-provider.nodes.${s}`, 'g'), s);
    assert.equal(promValue(prom.text, `nodepool_label_nodes{label="fake-label",state="${s}"}`),
      last(`nodepool.label.fake-label.nodes.${s}`, 'g'), s);
  }
  assert.equal(promValue(prom.text, 'nodepool_provider_max_servers{provider="fake-provider"}'), 96);
  assert.equal(promValue(prom.text, `nodepool_launch_total{provider="fake-provider",az="${az}",requestor="NodePool:min-ready",result="ready"}`), 2);
  assert.equal(promValue(prom.text, 'nodepool_launch_duration_seconds_count{provider="fake-provider",result="ready"}'), 2);
  assert.equal(promValue(prom.text, 'nodepool_stats_leader'), 1);
});

test('a failed launch is counted under its error, per provider and per requestor (. and : replaced)', async (t: TestContext) => {
  lines = [];
  const lw = await launcherWeb((env) => fakeConfig(env, {
    labels: [{ name: 'fake-label' }],
    providerExtra: '    launch-retries: 1\n    faults:\n      error-rate: 1.0\n',
  }));
  t.after(() => lw.close());
  const req = newNodeRequest({ node_types: ['fake-label'], requestor: 'zuul.example.org:check' });
  const id = await lw.zk.submitNodeRequest(req, '200');
  await waitFor('request failed', async () => (await lw.zk.getNodeRequest(id))?.state === 'failed', 20_000, 50);
  await waitFor('error stats', () => last('nodepool.launch.error.status', 'c') !== null, 10_000, 50);
  assert.equal(last('nodepool.launch.provider.fake-provider.error.status', 'c'), 1);
  assert.equal(last('nodepool.launch.requestor.zuul_example_org_check.error.status', 'c'), 1);
  assert.ok((last('nodepool.launch.error.status', 'ms') ?? -1) >= 0);
  const prom = await http(`${lw.url}/metrics`);
  assert.match(prom.text, /nodepool_launch_total\{provider="fake-provider",az="[^"]*",requestor="zuul.example.org:check",result="error.status"\} 1/);
});

test('without STATSD_HOST nothing is sent, Prometheus still works', async (t: TestContext) => {
  delete process.env.STATSD_HOST;
  try {
    lines = [];
    const lw = await launcherWeb((env) => fakeConfig(env, { labels: [{ name: 'fake-label', minReady: 1 }] }));
    t.after(() => lw.close());
    await waitFor('a node', async () => (await lw.zk.getNodes()).some((n) => n.state === 'ready'), 20_000, 50);
    const prom = await http(`${lw.url}/metrics`);
    assert.equal(promValue(prom.text, 'nodepool_nodes{state="ready"}'), 1);
    await new Promise((r) => setTimeout(r, 1200));
    assert.deepEqual(lines, []);
    assert.equal(lw.launcher.metrics?.statsdEnabled, false);
  } finally {
    process.env.STATSD_HOST = '127.0.0.1';
  }
});
