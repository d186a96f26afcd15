// Requests, nodes and launchers against the real ZooKeeper (one chroot per test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newNode, newNodeRequest } from '../src/model/index.js';
import { LockError, ZkError, ZkConnectError, buildConnection, paths, type ZooKeeper } from '../src/zk/index.js';
import { connectZk, dropChroot, silent, uniqueChroot } from './zk-helpers.js';
import { ZooKeeper as ZK } from '../src/zk/index.js';

async function withZk(fn: (zk: ZooKeeper, chroot: string) => Promise<void>): Promise<void> {
  const chroot = uniqueChroot();
  const zk = await connectZk(chroot);
  try {
    await fn(zk, chroot);
  } finally {
    await zk.close();
    await dropChroot(chroot);
  }
}

test('connection string: servers with one chroot (the first server\'s)', () => {
  assert.deepEqual(buildConnection([{ host: 'zk1', port: 2181, chroot: '/nodepool' }, { host: 'zk2', port: 2182, chroot: '/other' }]), {
    hosts: ['zk1:2181', 'zk2:2182'], chroot: '/nodepool', display: 'zk1:2181,zk2:2182', connectString: 'zk1:2181,zk2:2182/nodepool',
  });
  assert.equal(buildConnection([{ host: 'zk1', port: 2181, chroot: null }]).connectString, 'zk1:2181');
  assert.equal(buildConnection('zk1:2181/np,zk2:2181/np').connectString, 'zk1:2181,zk2:2181/np');
  assert.equal(buildConnection('zk1,zk2:2222').connectString, 'zk1:2181,zk2:2222');
  assert.equal(buildConnection([{ host: 'h', port: 1, chroot: 'np/' }]).chroot, '/np');
});

test('connect with connectTimeoutMs to a dead server fails naming host:port', async () => {
  const zk = new ZK({ servers: [{ host: '127.0.0.1', port: 1, chroot: null }], connectTimeoutMs: 1500, log: silent });
  const t0 = Date.now();
  await assert.rejects(zk.connect(), (e: unknown) => {
    assert.ok(e instanceof ZkConnectError);
    assert.equal(e.code, 'ECONNECT');
    assert.match(e.message, /could not connect to ZooKeeper at 127\.0\.0\.1:1 within 1\.5s: connect ECONNREFUSED 127\.0\.0\.1:1$/);
    assert.equal(e.reason, 'connect ECONNREFUSED 127.0.0.1:1');
    return true;
  });
  assert.ok(Date.now() - t0 < 5000);
  await zk.close();
});

test('create with makepath of a top-level znode in a chroot that does not exist yet creates the chroot (as kazoo does)', async () => {
  await withZk(async (zk) => {
    assert.equal(await zk.create('/top', Buffer.from('x'), 'ephemeral'), '/top');
    assert.equal((await zk.getData('/top'))?.toString(), 'x');
  });
});

test('nodes: sequential ids from 0000000000, store/get/update, delete writes deleted first', async () => {
  await withZk(async (zk) => {
    const n = newNode({ state: 'building', provider: 'p', pool: 'main', type: ['l1'] });
    await zk.storeNode(n);
    assert.equal(n.id, '0000000000');
    assert.equal(n.created_time, n.state_time);
    const n2 = newNode({ state: 'ready', type: ['l1', 'l2'] });
    await zk.storeNode(n2);
    assert.equal(n2.id, '0000000001');
    assert.deepEqual(await zk.getNode('0000000000'), n);
    n.state = 'ready';
    n.hostname = 'h1';
    await zk.storeNode(n);
    assert.deepEqual(await zk.getNode('0000000000'), n);
    assert.deepEqual(await zk.getNodeIds(), ['0000000000', '0000000001']);
    assert.deepEqual((await zk.getNodes()).map((x) => x.id), ['0000000000', '0000000001']);
    assert.equal(await zk.getNode('0000000099'), null);

    // an empty znode (someone locked a vanished id) is "no node", and getNodes skips it
    await zk.mkdirp(paths.node('0000000077'));
    assert.equal(await zk.getNode('0000000077'), null);
    assert.deepEqual(await zk.getNodeData('0000000077'), Buffer.alloc(0));
    assert.equal((await zk.getNodes()).length, 2);
    await zk.deleteRawNode('0000000077');
    assert.equal(await zk.getNodeData('0000000077'), null);

    assert.ok(await zk.lockNode(n));
    await zk.unlockNode(n);
    await zk.deleteNode(n);
    assert.equal(await zk.exists(paths.node('0000000000')), false);
    assert.equal(n.state, 'ready', 'the caller object is left alone');
    await zk.deleteNode(n); // already gone: fine
    await assert.rejects(zk.storeNode(n), (e: unknown) => e instanceof ZkError && e.code === 'ENONODE');
  });
});

test('requests: <prio>-<seq> ids, sorted listing, update, delete; lock dir survives the request', async () => {
  await withZk(async (zk) => {
    const ids: string[] = [];
    for (const prio of ['500', '100', '400', '100']) {
      const r = newNodeRequest({ node_types: ['l1'], requestor: 'test' });
      ids.push(await zk.submitNodeRequest(r, prio));
      assert.equal(r.id, ids[ids.length - 1]);
    }
    assert.deepEqual(ids, ['500-0000000000', '100-0000000001', '400-0000000002', '100-0000000003']);
    assert.deepEqual(await zk.getNodeRequestIds(), ['100-0000000001', '100-0000000003', '400-0000000002', '500-0000000000']);
    assert.deepEqual((await zk.getNodeRequests()).map((r) => r.id), ['100-0000000001', '100-0000000003', '400-0000000002', '500-0000000000']);

    const r = await zk.getNodeRequest('100-0000000001');
    assert.ok(r);
    assert.ok(await zk.lockNodeRequest(r));
    const other = await zk.getNodeRequest('100-0000000001');
    assert.ok(other);
    assert.equal(await zk.lockNodeRequest(other), false, 'second lock on the same request fails');
    r.state = 'pending';
    r.declined_by.push('l-1');
    await zk.storeNodeRequest(r);
    assert.deepEqual(await zk.getNodeRequest('100-0000000001'), r);
    await zk.unlockNodeRequest(r);
    await assert.rejects(zk.unlockNodeRequest(r), LockError);

    assert.deepEqual(await zk.getNodeRequestLockIds(), ['100-0000000001']);
    await zk.deleteNodeRequest('100-0000000001');
    await zk.deleteNodeRequest('100-0000000001');
    assert.equal(await zk.getNodeRequest('100-0000000001'), null);
    assert.deepEqual(await zk.getNodeRequestLockIds(), ['100-0000000001']);
    const st = await zk.getNodeRequestLockStat('100-0000000001');
    assert.ok(st && Math.abs(st.mtimeMs - Date.now()) < 60_000);
    await zk.deleteNodeRequestLock('100-0000000001');
    assert.deepEqual(await zk.getNodeRequestLockIds(), []);
    assert.equal(await zk.getNodeRequestLockStat('100-0000000001'), null);
    await assert.rejects(zk.storeNodeRequest(r), (e: unknown) => e instanceof ZkError && e.code === 'ENONODE');
  });
});

test('requests are ephemeral: they vanish with the session', async () => {
  const chroot = uniqueChroot();
  const a = await connectZk(chroot);
  const b = await connectZk(chroot);
  try {
    const id = await a.submitNodeRequest(newNodeRequest({ node_types: ['x'] }), '200');
    assert.ok(await b.getNodeRequest(id));
    await a.close();
    assert.equal(await b.getNodeRequest(id), null);
  } finally {
    await a.close();
    await b.close();
    await dropChroot(chroot);
  }
});

test('node locks: twice fails, unlock without lock raises, transfer, isNodeLocked, contenders', async () => {
  await withZk(async (zk) => {
    const n = newNode({ state: 'ready' });
    await zk.storeNode(n);
    const id = n.id ?? '';
    assert.equal(await zk.isNodeLocked(id), false);
    assert.equal(await zk.nodeLockHasContenders(id), false);
    assert.ok(await zk.lockNode(n));
    const copy = await zk.getNode(id);
    assert.ok(copy);
    assert.equal(await zk.lockNode(copy), false);
    await assert.rejects(zk.unlockNode(copy), LockError);
    assert.equal(await zk.isNodeLocked(id), true);
    assert.equal(await zk.nodeLockHasContenders(id), true);
    zk.transferNodeLock(n, copy);
    assert.ok(zk.holdsLock(copy));
    await zk.unlockNode(copy);
    await zk.unlockNode(n); // same lock, already released: a no-op
    assert.equal(await zk.isNodeLocked(id), false);
    assert.equal(await zk.nodeLockHasContenders(id), false);

    // refresh: the object is reloaded in place after locking
    const stale = { ...copy, hostname: 'stale' };
    assert.ok(await zk.lockNode(stale, { refresh: true }));
    assert.equal(stale.hostname, null);
    await zk.unlockNode(stale);
  });
});

test('launchers: ephemeral registration is idempotent and updated when it differs', async () => {
  await withZk(async (zk) => {
    const info = { id: 'host-1-PoolWorker.p-main', provider_name: 'p', supported_labels: ['b', 'a'] };
    await zk.registerLauncher(info);
    const st1 = await zk.stat(paths.launcher(info.id));
    await zk.registerLauncher({ ...info, supported_labels: ['a', 'b'] });
    const st2 = await zk.stat(paths.launcher(info.id));
    assert.equal(st2?.version, st1?.version, 'same registration: not rewritten');
    assert.deepEqual(await zk.getRegisteredLaunchers(), [{ id: info.id, provider_name: 'p', supported_labels: ['a', 'b'] }]);
    await zk.registerLauncher({ ...info, supported_labels: ['a', 'b', 'c'] });
    assert.deepEqual((await zk.getRegisteredLaunchers())[0]?.supported_labels, ['a', 'b', 'c']);
    assert.ok(st1 && st1.ephemeralOwner.some((b) => b !== 0), 'ephemeral');
    await zk.unregisterLauncher(info.id);
    await zk.unregisterLauncher(info.id);
    assert.deepEqual(await zk.getRegisteredLaunchers(), []);
  });
});
