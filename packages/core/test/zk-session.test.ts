// Session loss: a NEW session is built, 'lost' then 'connected' are emitted, locks of the old
// session are marked lost, waiters re-contend, caches reload and re-arm their watches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newNode } from '../src/model/index.js';
import { Lock, NodeCache, paths, type SessionState } from '../src/zk/index.js';
import { connectZk, dropChroot, eventually, expireSession, uniqueChroot } from './zk-helpers.js';

test('expiry: lost then connected on a new session; held locks marked lost; owners re-register', async () => {
  const chroot = uniqueChroot();
  const zk = await connectZk(chroot);
  const other = await connectZk(chroot);
  try {
    const states: SessionState[] = [];
    zk.on('state', (s: SessionState) => states.push(s));
    const info = { id: 'l-1', provider_name: 'p', supported_labels: ['a'] };
    await zk.registerLauncher(info);
    zk.on('connected', () => void zk.registerLauncher(info).catch(() => undefined));
    const n = newNode({ state: 'ready' });
    await zk.storeNode(n);
    assert.ok(await zk.lockNode(n));
    const gen = zk.sessionGeneration;
    const oldSession = zk.sessionCredentials().id.toString('hex');

    await expireSession(zk);
    await eventually(() => states.includes('lost') && zk.state === 'connected', 20_000, 'new session');
    assert.deepEqual(states.slice(states.indexOf('lost')), ['lost', 'connected']);
    assert.notEqual(zk.sessionCredentials().id.toString('hex'), oldSession);
    assert.ok(zk.sessionGeneration > gen);
    assert.equal(zk.holdsLock(n), false, 'a lock of the old session is never assumed');
    assert.equal(zk.getNodeLock(n)?.isAcquired, false);
    await zk.unlockNode(n); // harmless

    // the other session can take the node lock: ours died with our session
    const copy = await other.getNode(n.id ?? '');
    assert.ok(copy);
    assert.ok(await other.lockNode(copy));
    await other.unlockNode(copy);
    // the owner re-registered its ephemeral launcher in the new session
    await eventually(async () => (await other.getRegisteredLaunchers()).length === 1, 5000, 're-registration');
    const st = await other.stat(paths.launcher('l-1'));
    assert.equal(st?.ephemeralOwner.toString('hex'), zk.sessionCredentials().id.toString('hex'));
  } finally {
    await zk.close();
    await other.close();
    await dropChroot(chroot);
  }
});

test('a blocking acquire interrupted by expiry re-contends in the new session', async () => {
  const chroot = uniqueChroot();
  const holder = await connectZk(chroot);
  const waiter = await connectZk(chroot);
  try {
    const path = paths.nodeLock('0000000001');
    const h = new Lock(holder, path);
    assert.ok(await h.acquire());
    const w = new Lock(waiter, path);
    const p = w.acquire({ timeoutMs: 30_000 });
    await eventually(async () => (await holder.getChildren(path)).length === 2, 5000, 'waiter contending');
    await expireSession(waiter);
    await eventually(() => waiter.state === 'connected' && waiter.sessionGeneration > 0, 20_000, 'waiter reconnected');
    await eventually(async () => (await holder.getChildren(path)).length === 2, 10_000, 'waiter contending again');
    await h.release();
    assert.equal(await p, true);
    assert.ok(w.isAcquired);
    assert.equal((await holder.getChildren(path)).length, 1, 'no orphan contender');
    await w.release();
  } finally {
    await holder.close();
    await waiter.close();
    await dropChroot(chroot);
  }
});

test('caches reload after a new session and keep watching', async () => {
  const chroot = uniqueChroot();
  const zk = await connectZk(chroot);
  const other = await connectZk(chroot);
  const cache = new NodeCache(zk);
  try {
    const a = newNode({ state: 'ready' });
    await other.storeNode(a);
    await cache.start();
    assert.equal(cache.all().length, 1);
    await expireSession(zk);
    await eventually(() => zk.state === 'connected' && zk.sessionGeneration > 0, 20_000, 'new session');
    a.state = 'used';
    await other.storeNode(a);
    const b = newNode({ state: 'ready' });
    await other.storeNode(b);
    await eventually(() => cache.get(a.id ?? '')?.state === 'used' && cache.get(b.id ?? '') !== undefined, 10_000, 'cache follows after expiry');
    await other.deleteNode(b);
    await eventually(() => cache.get(b.id ?? '') === undefined, 10_000, 'deletion seen');
  } finally {
    cache.stop();
    await zk.close();
    await other.close();
    await dropChroot(chroot);
  }
});
