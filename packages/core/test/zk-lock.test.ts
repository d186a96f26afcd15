// The kazoo lock recipe as seen on the wire, and lock behaviour between two sessions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lock, LockError, LockTimeoutError, paths, sortContenders, watchEventType } from '../src/zk/index.js';
import { newNode } from '../src/model/index.js';
import { withTwo } from './zk-helpers.js';

test('contender znodes: <32 hex>__lock__<10 digits>, ephemeral, empty data unless an identifier', async () => {
  await withTwo(async (a) => {
    const lock = new Lock(a, '/nodepool/nodes/0000000005/lock');
    assert.ok(await lock.acquire({ blocking: false }));
    const children = await a.getChildren('/nodepool/nodes/0000000005/lock');
    assert.equal(children.length, 1);
    assert.match(children[0] ?? '', /^[0-9a-f]{32}__lock__\d{10}$/);
    assert.equal(children[0], lock.contenderName);
    const child = paths.child('/nodepool/nodes/0000000005/lock', children[0] ?? '');
    const r = await a.getDataStat(child);
    assert.ok(r);
    assert.equal(r.data.length, 0);
    assert.ok(r.stat.ephemeralOwner.some((x) => x !== 0));
    // the lock dir is created persistent & empty along with its parents
    assert.deepEqual(await a.getData('/nodepool/nodes/0000000005'), Buffer.alloc(0));
    await lock.release();
    assert.equal(lock.isAcquired, false);
    assert.deepEqual(await a.getChildren('/nodepool/nodes/0000000005/lock'), []);
    assert.ok(await a.exists('/nodepool/nodes/0000000005/lock'), 'the lock dir is never removed');

    const named = new Lock(a, paths.statsElection, 'host-123');
    assert.ok(await named.acquire());
    assert.deepEqual(await named.contenders(), ['host-123']);
    await named.release();
    await named.release(); // releasing an unheld lock is a no-op
  });
});

test('conflicts: non-blocking gives false and leaves no contender; blocking times out', async () => {
  await withTwo(async (a, b) => {
    const path = paths.imageBuildLock('ubuntu');
    const la = new Lock(a, path);
    assert.ok(await la.acquire({ blocking: false }));
    const lb = new Lock(b, path);
    assert.equal(await lb.acquire({ blocking: false }), false);
    assert.equal((await a.getChildren(path)).length, 1, 'failed contender removed');
    const t0 = Date.now();
    await assert.rejects(lb.acquire({ timeoutMs: 300 }), (e: unknown) => {
      assert.ok(e instanceof LockTimeoutError);
      assert.equal(e.code, 'ELOCKTIMEOUT');
      assert.match(e.message, /Failed to acquire lock on .*builds\/lock after 0\.3 seconds/);
      return true;
    });
    assert.ok(Date.now() - t0 >= 290);
    assert.equal((await a.getChildren(path)).length, 1, 'timed-out contender removed');
    // the same Lock object is not re-entrant
    assert.equal(await la.acquire({ blocking: false }), false);
    await assert.rejects(la.acquire(), LockError);
    await la.release();
    assert.ok(await lb.acquire({ blocking: false }));
    await lb.release();
  });
});

test('blocking waiters get the lock in sequence order as holders release', async () => {
  await withTwo(async (a, b) => {
    const path = paths.buildLock('img', '0000000001');
    const first = new Lock(a, path, 'first');
    assert.ok(await first.acquire());
    const order: string[] = [];
    const second = new Lock(b, path, 'second');
    const third = new Lock(a, path, 'third');
    const p2 = second.acquire().then(() => order.push('second'));
    await new Promise((r) => setTimeout(r, 100));
    const p3 = third.acquire().then(() => order.push('third'));
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await first.contenders(), ['first', 'second', 'third']);
    assert.deepEqual(order, []);
    await first.release();
    await p2;
    assert.deepEqual(order, ['second']);
    await second.release();
    await p3;
    assert.deepEqual(order, ['second', 'third']);
    await third.release();
  });
});

test('a waiter whose predecessor (not the holder) leaves keeps waiting for the holder', async () => {
  await withTwo(async (a, b) => {
    const path = paths.uploadLock('img', '0000000001', 'prov');
    const holder = new Lock(a, path);
    assert.ok(await holder.acquire());
    const middle = new Lock(b, path);
    const mp = middle.acquire({ timeoutMs: 200 }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    const last = new Lock(b, path);
    let got = false;
    const lp = last.acquire().then(() => {
      got = true;
    });
    assert.ok((await mp) instanceof LockTimeoutError);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(got, false);
    await holder.release();
    await lp;
    assert.ok(last.isAcquired);
    await last.release();
  });
});

test('session close releases the lock for the other session', async () => {
  await withTwo(async (a, b) => {
    const n = newNode({ state: 'ready' });
    await a.storeNode(n);
    assert.ok(await a.lockNode(n));
    const other = await b.getNode(n.id ?? '');
    assert.ok(other);
    const p = b.lockNode(other, { blocking: true, timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 100));
    await a.close();
    assert.equal(await p, true);
    assert.equal(a.getNodeLock(n)?.isAcquired, false, 'a closed session holds nothing');
    await b.unlockNode(other);
  });
});

test('sortContenders orders by sequence, ignores non-contenders, accepts __rlock__', () => {
  assert.deepEqual(sortContenders([
    'b'.repeat(32) + '__lock__0000000003', 'lock', 'a'.repeat(32) + '__rlock__0000000001', 'x__lock__123', 'c'.repeat(32) + '__lock__0000000002',
  ]), ['a'.repeat(32) + '__rlock__0000000001', 'c'.repeat(32) + '__lock__0000000002', 'b'.repeat(32) + '__lock__0000000003']);
});

test('deleteNode writes state deleted before removing the znode', async () => {
  await withTwo(async (a, b) => {
    const n = newNode({ state: 'deleting' });
    await a.storeNode(n);
    const types: string[] = [];
    const seen = new Promise<void>((resolve) => {
      void b.getDataStat(paths.node(n.id ?? ''), (ev) => {
        types.push(watchEventType(ev));
        resolve();
      });
    });
    assert.ok(await a.lockNode(n));
    await a.deleteNode(n);
    await seen;
    assert.deepEqual(types, ['changed']);
    assert.equal(await b.exists(paths.node(n.id ?? '')), false);
  });
});

test('acquireOrThrow / withLock: "Did not get lock on <path>" when taken', async () => {
  await withTwo(async (a, b) => {
    const la = a.imageBuildLock('img');
    const result = await la.withLock(async () => {
      await assert.rejects(b.imageBuildLock('img').acquireOrThrow({ blocking: false }), (e: unknown) =>
        e instanceof LockError && e.code === 'ELOCK' && e.message === `Did not get lock on ${paths.imageBuildLock('img')}`);
      return 42;
    }, { blocking: false });
    assert.equal(result, 42);
    assert.equal(la.isAcquired, false);
    await b.imageBuildLock('img').withLock(async () => undefined, { blocking: false });
  });
});
