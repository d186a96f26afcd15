// ZooKeeper multi and what the layer builds on it: a lock taken together with its new directory,
// and a locked node or request deleted with its lock in one round trip (real server).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lock, ZkError, paths } from '../src/zk/index.js';
import { newNode, newNodeRequest } from '../src/model/index.js';
import { withTwo } from './zk-helpers.js';

test('multi: all ops or none; the failing op names the error', async () => {
  await withTwo(async (a, b) => {
    await a.mkdirp('/m');
    const r = await a.multi([
      { op: 'create', path: '/m/x', data: Buffer.from('1') },
      { op: 'create', path: '/m/x/y-', mode: 'persistent_sequential' },
      { op: 'set', path: '/m/x', data: Buffer.from('2') },
    ]);
    assert.equal(r[0]?.path, '/m/x');
    assert.match(r[1]?.path ?? '', /^\/m\/x\/y-\d{10}$/);
    assert.equal(r[2]?.stat?.version, 1);
    assert.deepEqual(await b.getData('/m/x'), Buffer.from('2'));
    // /m/z would be created, but /m/x exists: nothing happens
    await assert.rejects(a.multi([
      { op: 'create', path: '/m/z' },
      { op: 'create', path: '/m/x' },
    ]), (err: unknown) => err instanceof ZkError && err.code === 'ENODEEXISTS');
    assert.equal(await b.exists('/m/z'), false);
    await assert.rejects(a.multi([{ op: 'delete', path: '/m/x' }]),
      (err: unknown) => err instanceof ZkError && err.code === 'ENOTEMPTY');
  });
});

test('createParent: a lock taken with its new directory is the only contender; an existing directory falls back to the recipe', async () => {
  await withTwo(async (a, b) => {
    const dir = paths.requestLock('200-0000000001');
    const first = new Lock(a, dir);
    assert.equal(await first.acquire({ blocking: false, createParent: true }), true);
    assert.equal((await b.getChildren(dir)).length, 1);
    assert.equal(first.heldContenderPath, paths.child(dir, first.contenderName ?? ''));
    // the directory exists now: a second locker's multi fails and the kazoo recipe refuses it
    const second = new Lock(b, dir);
    assert.equal(await second.acquire({ blocking: false, createParent: true }), false);
    assert.equal((await a.getChildren(dir)).length, 1, 'the refused contender is removed');
    await first.release();
    assert.equal(await second.acquire({ blocking: false, createParent: true }), true, 'an existing free directory: taken through the recipe');
    await second.release();
    assert.deepEqual(await a.getChildren(dir), []);
  });
});

test('deleteLockedNode: contender, lock dir and node go together and the lock is released', async () => {
  await withTwo(async (a, b) => {
    const n = newNode({ state: 'used', provider: 'p', type: ['x'] });
    await a.storeNode(n);
    assert.ok(n.id);
    assert.equal(await a.lockNode(n), true);
    await a.deleteLockedNode({ ...n, state: 'deleting' }, n);
    assert.equal(await b.exists(paths.node(n.id)), false);
    assert.equal(a.holdsLock(n), false);
    await assert.rejects(a.unlockNode(n), /does not hold a lock/);
  });
});

test('deleteLockedNode: with another contender waiting it falls back to the `deleted` write and recursive delete', async () => {
  await withTwo(async (a, b) => {
    const n = newNode({ state: 'used', provider: 'p', type: ['x'] });
    await a.storeNode(n);
    assert.ok(n.id);
    assert.equal(await a.lockNode(n), true);
    const waiter = new Lock(b, paths.nodeLock(n.id));
    const waiting = waiter.acquire({ blocking: true, timeoutMs: 20_000 });
    for (let i = 0; i < 100 && (await a.getChildren(paths.nodeLock(n.id))).length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await a.getChildren(paths.nodeLock(n.id))).length, 2);
    await a.deleteLockedNode({ ...n, state: 'deleting' }, n);
    assert.equal(a.holdsLock(n), false);
    // the waiter's contender went with the recursive delete; kazoo's recipe recreates it (and an
    // empty node znode): no live node is left behind
    assert.equal(await waiting, true);
    assert.equal(await b.getNode(n.id), null);
    await waiter.release();
  });
});

test('deleteLockedRequest: the request and its lock directory go in one multi', async () => {
  await withTwo(async (a, b) => {
    const req = newNodeRequest({ node_types: ['x'], requestor: 'NodePool:min-ready' });
    const id = await b.submitNodeRequest(req, '100');
    assert.equal(await a.lockNodeRequest(req), true);
    await a.deleteLockedRequest(req);
    assert.equal(await b.exists(paths.request(id)), false);
    assert.equal(await b.exists(paths.requestLock(id)), false);
    assert.equal(a.holdsLock(req), false);
    // not locked: the request alone is deleted
    const other = newNodeRequest({ node_types: ['x'] });
    const id2 = await b.submitNodeRequest(other, '100');
    await a.deleteLockedRequest(other);
    assert.equal(await b.exists(paths.request(id2)), false);
  });
});

test('storeAndRelease: node and request writes and the lock releases land together, or nothing does', async () => {
  await withTwo(async (a, b) => {
    const n = newNode({ state: 'ready', provider: 'p', type: ['x'] });
    await a.storeNode(n);
    assert.ok(n.id);
    const req = newNodeRequest({ node_types: ['x'] });
    const id = await b.submitNodeRequest(req, '200');
    assert.equal(await a.lockNodeRequest(req), true);
    assert.equal(await a.lockNode(n), true);
    n.allocated_to = id;
    req.state = 'fulfilled';
    req.nodes = [n.id];
    assert.equal(await a.storeAndRelease([n], [req], [n, req]), true);
    assert.equal((await b.getNode(n.id))?.allocated_to, id);
    assert.equal((await b.getNodeRequest(id))?.state, 'fulfilled');
    assert.deepEqual(await b.getChildren(paths.nodeLock(n.id)), []);
    assert.deepEqual(await b.getChildren(paths.requestLock(id)), []);
    assert.equal(a.holdsLock(n), false);
    assert.equal(a.holdsLock(req), false);

    // the request is gone (cancelled): nothing is written, the node lock is still ours
    const gone = newNodeRequest({ node_types: ['x'] });
    const goneId = await b.submitNodeRequest(gone, '200');
    assert.equal(await a.lockNodeRequest(gone), true);
    assert.equal(await a.lockNode(n), true);
    await b.deleteNodeRequest(goneId);
    n.allocated_to = goneId;
    gone.state = 'fulfilled';
    assert.equal(await a.storeAndRelease([n], [gone], [n, gone]), false);
    assert.equal((await b.getNode(n.id))?.allocated_to, id, 'the node was not written');
    assert.equal(a.holdsLock(n), true);
    assert.equal((await b.getChildren(paths.nodeLock(n.id))).length, 1);
    await a.unlockNode(n);
    // a lock not held: refused before anything is sent
    assert.equal(await a.storeAndRelease([n], [], [n]), false);
  });
});
