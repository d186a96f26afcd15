// Launcher scenarios on the fake provider against the real ZooKeeper (§9.1).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { newNodeRequest, type NodeRequest } from '@nodepool-ts/core/model';
import { Launcher, type CloudManager } from '@nodepool-ts/launcher';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import { fakeConfig, waitFor, type TestEnv } from '../helpers/harness.js';
import { startLauncher } from '../helpers/launcher.js';

const cleanups: (() => Promise<void> | void)[] = [];

/** The manager of a cloud provider (fake), which the test asks for its servers. */
function cloud(launcher: Launcher, name: string): CloudManager {
  const mgr = launcher.manager(name);
  assert.ok(mgr !== null && mgr.kind === 'cloud', `${name} is a cloud provider`);
  return mgr;
}
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const setup = (yaml: (env: TestEnv) => string) => startLauncher(cleanups, yaml);

async function submit(zk: ZooKeeper, nodeTypes: string[], extra: Partial<NodeRequest> = {}, prio = '200'): Promise<string> {
  const req = newNodeRequest({ node_types: nodeTypes, requestor: 'unit-test', ...extra });
  return zk.submitNodeRequest(req, prio);
}

async function waitDone(zk: ZooKeeper, id: string): Promise<NodeRequest> {
  return waitFor(`request ${id} done`, async () => {
    const r = await zk.getNodeRequest(id);
    return r && (r.state === 'fulfilled' || r.state === 'failed') ? r : null;
  });
}

/** As Zuul after a job: the request deleted, its (one) node locked, marked used, unlocked. */
async function release(zk: ZooKeeper, req: NodeRequest): Promise<void> {
  const node = await zk.getNode(req.nodes[0] ?? '');
  assert.ok(node);
  await zk.lockNode(node, { blocking: true, timeoutMs: 5000 });
  await zk.deleteNodeRequest(req.id ?? '');
  node.state = 'used';
  await zk.storeNode(node);
  await zk.unlockNode(node);
}

test('a request is fulfilled with ready, allocated nodes carrying Nodepool fields', async () => {
  const { zk } = await setup((env) => fakeConfig(env));
  const id = await submit(zk, ['fake-label']);
  const req = await waitDone(zk, id);
  assert.equal(req.state, 'fulfilled');
  assert.equal(req.nodes.length, 1);
  const node = await zk.getNode(req.nodes[0] ?? '');
  assert.ok(node);
  assert.equal(node.state, 'ready');
  assert.equal(node.allocated_to, id);
  assert.equal(node.provider, 'fake-provider');
  assert.equal(node.pool, 'main');
  assert.deepEqual(node.type, ['fake-label']);
  assert.equal(node.launcher, `test-${process.pid}-PoolWorker.fake-provider-main`);
  assert.equal(node.connection_type, 'ssh');
  assert.equal(node.connection_port, 22);
  assert.equal(node.image_id, 'fake-image');
  assert.deepEqual(node.resources, { cores: 4, instances: 1, ram: 8192 });
  assert.ok(node.external_id);
  assert.ok(node.interface_ip);
  assert.equal(node.hostname, `fake-label-fake-provider-${node.id}`);
  assert.equal(await zk.isNodeLocked(node.id ?? ''), false);
});

test('nodes follow node_types order for several labels', async () => {
  const labels = ['l1', 'l2', 'l3', 'l4'];
  const { zk } = await setup((env) => fakeConfig(env, { labels: labels.map((name) => ({ name })) }));
  const order = ['l3', 'l1', 'l4', 'l2'];
  const req = await waitDone(zk, await submit(zk, order));
  assert.equal(req.state, 'fulfilled');
  const types = [];
  for (const nid of req.nodes) types.push((await zk.getNode(nid))?.type[0]);
  assert.deepEqual(types, order);
});

test('an unknown label fails the request with the launcher in declined_by', async () => {
  const { zk } = await setup((env) => fakeConfig(env));
  const req = await waitDone(zk, await submit(zk, ['no-such-label']));
  assert.equal(req.state, 'failed');
  assert.deepEqual(req.declined_by, [`test-${process.pid}-PoolWorker.fake-provider-main`]);
});

test('a request without node_types fails; the launcher keeps serving', async () => {
  const { zk } = await setup((env) => fakeConfig(env));
  const bad = await waitDone(zk, await submit(zk, []));
  assert.equal(bad.state, 'failed');
  const good = await waitDone(zk, await submit(zk, ['fake-label']));
  assert.equal(good.state, 'fulfilled');
});

test('min-ready keeps ready nodes and refills when one is taken', async () => {
  const { zk } = await setup((env) => fakeConfig(env, { labels: [{ name: 'fake-label', minReady: 2 }] }));
  const readyFree = async () => (await zk.getNodes()).filter((n) => n.state === 'ready' && n.allocated_to === null);
  await waitFor('2 min-ready nodes', async () => (await readyFree()).length === 2);
  const before = new Set((await readyFree()).map((n) => n.id));
  const req = await waitDone(zk, await submit(zk, ['fake-label']));
  assert.equal(req.state, 'fulfilled');
  assert.ok(before.has(req.nodes[0] ?? ''), 'a warm node was reused');
  await waitFor('refilled to 2', async () => (await readyFree()).length === 2);
  const reqs = await zk.getNodeRequests();
  assert.deepEqual(reqs.filter((r) => r.requestor === 'NodePool:min-ready'), [], 'min-ready requests are deleted once fulfilled');
});

test('used nodes are deleted, their servers removed', async () => {
  const { zk, launcher } = await setup((env) => fakeConfig(env));
  const req = await waitDone(zk, await submit(zk, ['fake-label']));
  const node = await zk.getNode(req.nodes[0] ?? '');
  assert.ok(node?.external_id);
  await zk.lockNode(node, { blocking: true, timeoutMs: 5000 });
  await zk.deleteNodeRequest(req.id ?? '');
  node.state = 'in-use';
  await zk.storeNode(node);
  node.state = 'used';
  await zk.storeNode(node);
  await zk.unlockNode(node);
  await waitFor('node removed', async () => (await zk.getNode(node.id ?? '')) === null);
  assert.equal(await cloud(launcher, 'fake-provider').getServer(node.external_id ?? ''), null);
});

test('pool max-servers pauses a request until a node is freed', async () => {
  const { zk } = await setup((env) => fakeConfig(env).replace('max-servers: 96', 'max-servers: 1'));
  const first = await waitDone(zk, await submit(zk, ['fake-label']));
  assert.equal(first.state, 'fulfilled');
  const second = await submit(zk, ['fake-label']);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await zk.getNodeRequest(second))?.state, 'pending');
  await release(zk, first);
  const done = await waitDone(zk, second);
  assert.equal(done.state, 'fulfilled');
});

test("Zuul revises a queued request's relative_priority (kazoo, non-blocking lock): served in the new order", async () => {
  const { env, zk } = await setup((e) => fakeConfig(e).replace('max-servers: 96', 'max-servers: 1'));
  const first = await waitDone(zk, await submit(zk, ['fake-label']));
  const paused = await submit(zk, ['fake-label']);
  await waitFor('the pool paused on the second request', async () => (await zk.getNodeRequest(paused))?.state === 'pending');
  const late = await submit(zk, ['fake-label'], { relative_priority: 5 });
  const early = await submit(zk, ['fake-label'], { relative_priority: 3 });
  // as Zuul's reviseRequest: lock without blocking (give up if Nodepool holds it), rewrite, unlock
  const revise = spawnSync('/usr/bin/python3', ['-c', `
import json, sys
from kazoo.client import KazooClient
zk = KazooClient(sys.argv[1]); zk.start()
for rid, prio in ((sys.argv[2], 1), (sys.argv[3], 1)):
    lock = zk.Lock('/nodepool/requests-lock/' + rid)
    if not lock.acquire(blocking=False):
        print('locked', rid); continue
    path = '/nodepool/requests/' + rid
    data = json.loads(zk.get(path)[0])
    data['relative_priority'] = prio
    zk.set(path, json.dumps(data).encode('utf8'))
    lock.release()
    print('revised', rid)
zk.stop()
`, env.kazooHosts, late, paused], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(revise.status, 0, revise.stderr);
  // the queued request was revised; the one the launcher holds (pending) was not
  assert.deepEqual(revise.stdout.trim().split('\n'), [`revised ${late}`, `locked ${paused}`]);
  assert.equal((await zk.getNodeRequest(late))?.relative_priority, 1);
  await release(zk, first);
  const second = await waitDone(zk, paused);
  assert.equal(second.state, 'fulfilled');
  assert.equal(second.relative_priority, 0, "the launcher's request kept its own data");
  await release(zk, second);
  // 1 (revised from 5) now goes before 3
  const third = await waitFor('the next request fulfilled', async () => {
    for (const id of [late, early]) if ((await zk.getNodeRequest(id))?.state === 'fulfilled') return id;
    return null;
  });
  assert.equal(third, late);
  const revised = await zk.getNodeRequest(late);
  assert.equal(revised?.relative_priority, 1, 'the fulfilled write kept the revision');
  assert.equal((await zk.getNodeRequest(early))?.state !== 'fulfilled', true);
});

test('a READY node allocated to a vanished request is deallocated', async () => {
  const { zk } = await setup((env) => fakeConfig(env));
  const req = await waitDone(zk, await submit(zk, ['fake-label']));
  await zk.deleteNodeRequest(req.id ?? '');
  const nodeId = req.nodes[0] ?? '';
  await waitFor('deallocated', async () => (await zk.getNode(nodeId))?.allocated_to === null);
  assert.equal((await zk.getNode(nodeId))?.state, 'ready');
});

test('launch failures exhaust launch-retries and fail the request', async () => {
  const { zk, launcher } = await setup((env) => fakeConfig(env, {
    providerExtra: '    launch-retries: 2\n    faults:\n      create-failure-rate: 1.0\n',
  }));
  const req = await waitDone(zk, await submit(zk, ['fake-label']));
  assert.equal(req.state, 'failed');
  assert.equal(req.declined_by.length, 1);
  await waitFor('failed node reaped', async () => (await zk.getNodes()).length === 0);
  assert.equal((await cloud(launcher, 'fake-provider').listServers()).length, 0);
});
