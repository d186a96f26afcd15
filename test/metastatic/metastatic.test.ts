// The metastatic driver end to end, after Nodepool's test_driver_metastatic.py: a fake cloud
// provides the backing nodes, a metastatic provider in the same launcher carves them up; real
// ZooKeeper, Zuul's part played by the test (or by a kazoo client).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { newNodeRequest, type NodeRequest } from '@nodepool-ts/core/model';
import { paths } from '@nodepool-ts/core/zk';
import { envWithZk, waitFor } from '../helpers/harness.js';
import {
  OWNER, backingOf, metaManager, metastaticYaml, nodeIds, startLauncher, take, waitDone, waitGone,
} from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];

function python(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('/usr/bin/python3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    p.on('exit', (code) => resolve({ code: code ?? 1, out }));
  });
}
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('two nodes share a backing node, a third gets a second one; idle backing nodes are released', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const launcher = await startLauncher(env.write('nodepool.yaml', metastaticYaml(env)), cleanups);
  const backingRequests: NodeRequest[] = [];
  launcher.events.on('request-stored', (req: NodeRequest) => {
    if (req.requestor === OWNER) backingRequests.push(structuredClone(req));
  });

  const t1 = await take(zk, 'user-label');
  const node1 = t1.node;
  const [n1id, bn1id] = await nodeIds(zk);
  assert.equal(n1id, node1.id);
  const bn1 = await zk.getNode(bn1id ?? '');
  assert.ok(bn1 !== null && node1.id !== null);
  // the backing node: a node of the fake cloud, ours (in use, locked with our identifier)
  assert.equal(bn1.provider, 'fake-provider');
  assert.deepEqual(bn1.type, ['backing-label']);
  assert.equal(bn1.state, 'in-use');
  assert.deepEqual(await zk.getNodeLockContenders(bn1.id ?? ''), [OWNER]);
  assert.match(String(bn1.extra['user_data']),
    /^\{"owner": "NodePool:metastatic:meta-provider", "label": "user-label", "slots": 2, "failed": false, "launched": \d+\.\d+\}$/);
  assert.deepEqual(bn1.attributes, { backattr: 'back', testattr: 'backing' });
  // it was asked for like any node, by Nodepool's requestor, at priority 100
  assert.ok(backingRequests.length > 0);
  for (const r of backingRequests) {
    assert.match(r.id ?? '', /^100-\d{10}$/);
    assert.deepEqual(r.node_types, ['backing-label']);
    assert.match(String(r.extra['event_id']), /^[0-9a-f]{32}$/);
  }
  assert.deepEqual((await zk.getNodeRequests()).filter((r) => r.requestor === OWNER), [], 'the backing request is deleted once taken');

  // the node: the backing node's connection fields, its own driver_data
  assert.equal(node1.provider, 'meta-provider');
  assert.equal(node1.pool, 'main');
  assert.deepEqual(node1.type, ['user-label']);
  for (const k of ['interface_ip', 'public_ipv4', 'private_ipv4', 'public_ipv6', 'cloud', 'region', 'az',
    'username', 'connection_type', 'connection_port'] as const) {
    assert.deepEqual(node1[k], bn1[k], k);
  }
  assert.ok(node1.interface_ip);
  assert.deepEqual(node1.host_keys, bn1.host_keys);
  assert.equal(node1.host_keys.length, 1, 'scanned (host-key-checking)');
  assert.equal(node1.connection_type, 'ssh');
  assert.equal(node1.external_id, node1.id);
  assert.equal(node1.hostname, null);
  assert.equal(node1.image_id, 'unused');
  assert.deepEqual(node1.resources, { cores: 0, instances: 1, ram: 0 });
  assert.deepEqual(node1.attributes, { backattr: 'back', metaattr: 'meta', testattr: 'metastatic' });
  assert.deepEqual(node1.extra['driver_data'], {
    metadata: { nodepool_node_id: node1.id, nodepool_pool_name: 'main', nodepool_provider_name: 'meta-provider' },
    backing_node: bn1.id, slot: 0, node: node1.id,
  });
  assert.equal(node1.extra['slot'], 0);
  assert.equal(node1.extra['python_path'], null);
  assert.equal(node1.extra['shell_type'], null);
  const raw = (await zk.getNodeData(node1.id))?.toString('utf8') ?? '';
  assert.ok(raw.includes(`"driver_data": {"metadata": {"nodepool_node_id": "${node1.id}", "nodepool_pool_name": "main", `
    + `"nodepool_provider_name": "meta-provider"}, "backing_node": "${bn1.id}", "slot": 0, "node": "${node1.id}"}`), raw);

  // a second node: the same backing node, slot 1
  const t2 = await take(zk, 'user-label');
  assert.equal(backingOf(t2.node), bn1.id);
  assert.equal(t2.node.extra['slot'], 1);
  assert.deepEqual(await nodeIds(zk), [node1.id, bn1.id, t2.node.id]);

  // a third: a second backing node
  const t3 = await take(zk, 'user-label');
  const ids = await nodeIds(zk);
  assert.equal(ids.length, 5);
  const bn2id = ids[4];
  assert.deepEqual(ids, [node1.id, bn1.id, t2.node.id, t3.node.id, bn2id]);
  assert.equal(backingOf(t3.node), bn2id);
  assert.notEqual(bn2id, bn1.id);

  // node 2 goes; both backing nodes stay; a replacement takes its slot
  await t2.release();
  await waitGone(zk, t2.node.id ?? '');
  assert.equal((await zk.getNode(bn1.id ?? ''))?.state, 'in-use');
  const t4 = await take(zk, 'user-label');
  assert.equal(backingOf(t4.node), bn1.id);
  assert.equal(t4.node.extra['slot'], 1);
  assert.deepEqual(await nodeIds(zk), [node1.id, bn1.id, t3.node.id, bn2id, t4.node.id]);

  // nodes 4 and 1 go: backing node 1 is idle, released after grace-time and deleted with its server
  const cloud = launcher.manager('fake-provider');
  assert.ok(cloud !== null && cloud.kind === 'cloud');
  assert.ok((await cloud.getServer(bn1.external_id ?? '')) !== null);
  await t4.release();
  await t1.release();
  await waitGone(zk, t4.node.id ?? '');
  await waitGone(zk, node1.id);
  await waitGone(zk, bn1.id ?? '');
  assert.equal(await cloud.getServer(bn1.external_id ?? ''), null, 'its server is deleted by its own provider');
  assert.deepEqual(await nodeIds(zk), [t3.node.id, bn2id]);
  assert.deepEqual(metaManager(launcher).describe().map((b) => [b.backingNode, b.slots]), [[bn2id, [t3.node.id, null]]]);
});

test('a restarted launcher rebuilds the slot map from ZooKeeper', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', metastaticYaml(env));
  const first = await startLauncher(cfg, cleanups);
  const t1 = await take(zk, 'user-label');
  const bn1 = backingOf(t1.node);
  assert.ok(bn1 !== null);
  await first.stop();
  // the persistent lock outlived the launcher's session
  assert.deepEqual(await zk.getNodeLockContenders(bn1), [OWNER]);
  // and Nodepool, reading the tree with kazoo, finds the same slot map
  const view = await python(['test/metastatic/nodepool_view.py', env.kazooHosts, 'meta-provider']);
  assert.equal(view.code, 0, view.out);
  const seen = JSON.parse(view.out) as Record<string, { label: string; slots: number; failed: boolean; assigned: Record<string, string> }>;
  assert.deepEqual(Object.keys(seen), [bn1]);
  assert.deepEqual({ ...seen[bn1], launched: undefined },
    { label: 'user-label', slots: 2, failed: false, launched: undefined, assigned: { 0: t1.node.id } });

  const second = await startLauncher(cfg, cleanups);
  assert.deepEqual(metaManager(second).describe().map((b) => [b.label, b.backingNode, b.slots]),
    [['user-label', bn1, [t1.node.id, null]]]);
  const t2 = await take(zk, 'user-label');
  assert.equal(backingOf(t2.node), bn1, 'the free slot of the known backing node is used');
  assert.equal(t2.node.extra['slot'], 1);
  const t3 = await take(zk, 'user-label');
  const bn2 = backingOf(t3.node);
  assert.ok(bn2 !== null && bn2 !== bn1);
  assert.deepEqual(await nodeIds(zk), [t1.node.id, bn1, t2.node.id, t3.node.id, bn2]);
});

test('nodes returned while no launcher ran: their backing node is released after a restart', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', metastaticYaml(env));
  const first = await startLauncher(cfg, cleanups);
  const t1 = await take(zk, 'user-label');
  const bn1 = backingOf(t1.node);
  assert.ok(bn1 !== null);
  await first.stop();
  await t1.release(); // Zuul finishes the job meanwhile

  await startLauncher(cfg, cleanups);
  await waitGone(zk, t1.node.id ?? '');
  await waitGone(zk, bn1);
  assert.deepEqual(await nodeIds(zk), []);
});

test('a config change keeps the metastatic provider\'s slot map (applied in place)', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const cfg = env.write('nodepool.yaml', metastaticYaml(env));
  const launcher = await startLauncher(cfg, cleanups);
  const manager = metaManager(launcher);
  const t1 = await take(zk, 'user-label');
  const bn1 = backingOf(t1.node);
  writeFileSync(cfg, metastaticYaml(env).replace('            grace-time: 1\n            max-age: 300', '            grace-time: 2\n            max-age: 300'));
  await waitFor('config reloaded', () => metaManager(launcher).config.pools[0]?.labels[0]?.graceTime === 2, 10_000);
  assert.equal(metaManager(launcher), manager, 'the same manager');
  const t2 = await take(zk, 'user-label');
  assert.equal(backingOf(t2.node), bn1);
  assert.equal(t2.node.extra['slot'], 1);
});

test('max-age: an old backing node takes no new nodes and goes once idle', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const launcher = await startLauncher(env.write('nodepool.yaml', metastaticYaml(env)), cleanups);
  const t1 = await take(zk, 'user-label-age');
  const bn1 = backingOf(t1.node);
  const t2 = await take(zk, 'user-label-age');
  assert.equal(backingOf(t2.node), bn1);
  await t2.release();
  await waitGone(zk, t2.node.id ?? '');
  // past max-age (3 s) it is out of service, with node 1 still on it
  await waitFor('backing node past max-age', () => metaManager(launcher).describe().find((b) => b.backingNode === bn1)?.failed === true, 10_000);
  assert.equal((await zk.getNode(bn1 ?? ''))?.state, 'in-use');
  const t3 = await take(zk, 'user-label-age');
  assert.notEqual(backingOf(t3.node), bn1, 'a new node gets a new backing node');
  // once node 1 is gone the old backing node goes at once
  await t1.release();
  await waitGone(zk, t1.node.id ?? '');
  await waitGone(zk, bn1 ?? '', 5_000);
});

test('min-retention-time: an idle backing node is kept until it has lived that long', async () => {
  const { env, zk } = await envWithZk(cleanups);
  await startLauncher(env.write('nodepool.yaml', metastaticYaml(env)), cleanups);
  const started = Date.now();
  const t1 = await take(zk, 'user-label-min-retention');
  const bn1 = backingOf(t1.node) ?? '';
  await t1.release();
  await waitGone(zk, t1.node.id ?? '');
  await new Promise((r) => setTimeout(r, 1000)); // grace-time 0: it would go now without min-retention-time
  assert.equal((await zk.getNode(bn1))?.state, 'in-use');
  await waitGone(zk, bn1, 15_000);
  assert.ok(Date.now() - started >= 4000, 'not before min-retention-time');
});

test('a backing node that goes away: its free nodes are deleted, busy ones finish, new nodes get a new one', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const launcher = await startLauncher(env.write('nodepool.yaml', metastaticYaml(env)), cleanups);
  const busy = await take(zk, 'user-label');
  const bn1 = backingOf(busy.node) ?? '';
  const free = await take(zk, 'user-label', { keep: false });
  assert.equal(backingOf(free.node), bn1);
  await waitFor('request of the free node forgotten', async () => (await zk.getNode(free.node.id ?? ''))?.allocated_to === null, 15_000);

  // someone deletes the backing node (as Nodepool's test does: deleting, and our lock removed)
  const bn = await zk.getNode(bn1);
  assert.ok(bn);
  bn.state = 'deleting';
  await zk.storeNode(bn);
  await zk.forceUnlockNode(bn1);
  await waitGone(zk, bn1);
  await waitGone(zk, free.node.id ?? '');
  assert.equal((await zk.getNode(busy.node.id ?? ''))?.state, 'in-use', 'a node in use is left to its job');
  assert.deepEqual(metaManager(launcher).describe().map((b) => [b.backingNode, b.gone, b.slots]), [[bn1, true, [busy.node.id, null]]]);

  const next = await take(zk, 'user-label');
  const bn2 = backingOf(next.node);
  assert.ok(bn2 !== null && bn2 !== bn1);
  await busy.release();
  await waitGone(zk, busy.node.id ?? '');
  await waitFor('record of the vanished backing node dropped',
    () => metaManager(launcher).describe().every((b) => b.backingNode !== bn1), 10_000);
});

test('a failed host-key scan takes the backing node out of service; the node gets another one', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const launcher = await startLauncher(env.write('nodepool.yaml', metastaticYaml(env)), cleanups);
  const t1 = await take(zk, 'user-label');
  const bn1 = backingOf(t1.node) ?? '';
  const scan = launcher.hostKeysOf.bind(launcher);
  let failures = 1;
  launcher.hostKeysOf = async (node) => {
    if (failures-- > 0) throw new Error('connection timed out');
    return scan(node);
  };
  const t2 = await take(zk, 'user-label');
  const bn2 = backingOf(t2.node);
  assert.ok(bn2 !== null && bn2 !== bn1);
  const u = JSON.parse(String((await zk.getNode(bn1))?.extra['user_data'])) as Record<string, unknown>;
  assert.equal(u.failed, true, 'written on the backing node, as Nodepool does');
  const t3 = await take(zk, 'user-label');
  assert.equal(backingOf(t3.node), bn2);
  // node 1 goes: the failed backing node goes with it
  await t1.release();
  await waitGone(zk, bn1);
  await waitFor('no backing request left behind', async () =>
    (await zk.getChildren(paths.requestsRoot)).length === 0);
});

test('a backing request that fails fails the node\'s launch attempts, then the request', async () => {
  const { env, zk } = await envWithZk(cleanups);
  const launcher = await startLauncher(env.write('nodepool.yaml', metastaticYaml(env)), cleanups);
  const attempts: string[] = [];
  launcher.events.on('launch-attempt', (_node, _by, a) => {
    if (a.error !== null) attempts.push(a.error);
  });
  const id = await zk.submitNodeRequest(newNodeRequest({ node_types: ['user-label-none'], requestor: 'zuul-test' }), '200');
  const req = await waitDone(zk, id);
  assert.equal(req.state, 'failed');
  assert.equal(attempts.length, 3, 'launch-retries (3) attempts, each with a new backing request');
  for (const e of attempts) assert.match(e, /^backing request 100-\d{10} failed/);
  await zk.deleteNodeRequest(id);
  await waitFor('failed node deleted, no backing request left', async () =>
    (await zk.getNodes()).length === 0 && (await zk.getNodeRequests()).length === 0);
  assert.deepEqual(metaManager(launcher).describe(), []);
});

test('a kazoo client acting as Zuul gets metastatic nodes', async () => {
  const { env, zk } = await envWithZk(cleanups);
  await startLauncher(env.write('nodepool.yaml', metastaticYaml(env)), cleanups);
  const r = await python(['test/zuul/zuul_client.py', env.kazooHosts, 'user-label,user-label', '--count', '2', '--timeout', '30']);
  assert.equal(r.code, 0, r.out);
  const results = r.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => !l.summary);
  assert.equal(results.length, 2);
  for (const res of results) {
    assert.equal(res.outcome, 'fulfilled');
    assert.deepEqual(res.labels, [['user-label'], ['user-label']]);
    assert.equal((res.interface_ips as unknown[]).length, 2);
  }
  // everything it used is deleted, and the backing nodes with it
  await waitFor('all nodes gone', async () => (await zk.getNodes()).length === 0, 20_000);
});
