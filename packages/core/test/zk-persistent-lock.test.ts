// kazoo's `Lock.acquire(ephemeral=False)` with an identifier, as Nodepool's metastatic driver holds
// its backing nodes: the contender outlives the session, its identifier names the holder, and
// `forceUnlockNode` releases it from any process. Checked against the real kazoo both ways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newNode } from '../src/model/index.js';
import { paths } from '../src/zk/index.js';
import { PyProcess, ZK_SERVER, connectZk, dropChroot, uniqueChroot, withTwo } from './zk-helpers.js';

const OWNER = 'NodePool:metastatic:meta-provider';

test('a persistent node lock survives its session; contenders name it; forceUnlockNode releases it', async () => {
  await withTwo(async (a, b) => {
    const node = newNode({ state: 'in-use' });
    await a.storeNode(node);
    const id = node.id ?? '';
    assert.equal(await a.lockNodePersistent(id, OWNER, { timeoutMs: 5000 }), true);
    const [child] = await a.getChildren(paths.nodeLock(id));
    assert.match(child ?? '', /^[0-9a-f]{32}__lock__\d{10}$/);
    const st = await a.getDataStat(paths.child(paths.nodeLock(id), child ?? ''));
    assert.ok(st);
    assert.equal(st.data.toString('utf8'), OWNER);
    assert.ok(st.stat.ephemeralOwner.every((x) => x === 0), 'the contender is persistent');
    await a.close();

    // another session (a restarted launcher) still sees the holder
    assert.deepEqual(await b.getNodeLockContenders(id), [OWNER]);
    assert.equal(await b.isNodeLocked(id), true);
    assert.equal(await b.lockNode(node, { blocking: false }), false);
    assert.equal(await b.forceUnlockNode(id, 'NodePool:metastatic:other'), false, 'not ours: left alone');
    assert.deepEqual(await b.getNodeLockContenders(id), [OWNER]);
    assert.equal(await b.forceUnlockNode(id, OWNER), true);
    assert.deepEqual(await b.getNodeLockContenders(id), []);
    assert.equal(await b.forceUnlockNode(id), false, 'nothing left to remove');
    assert.equal(await b.lockNode(node, { blocking: false }), true);
    await b.unlockNode(node);
    assert.deepEqual(await b.getNodeLockContenders('0000009999'), [], 'no lock dir: no contenders');
  });
});

test('a blocking persistent lock waits for the holder, then holds it', async () => {
  await withTwo(async (a, b) => {
    const node = newNode({ state: 'ready' });
    await a.storeNode(node);
    const id = node.id ?? '';
    assert.ok(await a.lockNode(node));
    const p = b.lockNodePersistent(id, OWNER, { timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 200));
    await a.unlockNode(node);
    assert.equal(await p, true);
    assert.deepEqual(await a.getNodeLockContenders(id), [OWNER]);
  });
});

test('kazoo sees our persistent lock with its identifier, and we see and release kazoo\'s', { timeout: 60_000 }, async () => {
  const chroot = uniqueChroot();
  const zk = await connectZk(chroot);
  await zk.mkdirp(paths.root);
  const py = new PyProcess('agent.py', [`${ZK_SERVER}${chroot}`]);
  const call = async (cmd: Record<string, unknown>): Promise<Record<string, unknown>> => {
    py.send(JSON.stringify(cmd));
    return JSON.parse(await py.next(30_000)) as Record<string, unknown>;
  };
  try {
    assert.deepEqual(JSON.parse(await py.next(30_000)), { ready: true });
    const ours = newNode({ state: 'in-use' });
    await zk.storeNode(ours);
    assert.ok(await zk.lockNodePersistent(ours.id ?? '', OWNER));
    await call({ op: 'lock', name: 'ours', path: paths.nodeLock(ours.id ?? '') });
    assert.deepEqual(await call({ op: 'contenders', name: 'ours' }), { contenders: [OWNER] });
    assert.deepEqual(await call({ op: 'acquire', name: 'ours', blocking: false }), { ok: false });

    const theirs = newNode({ state: 'in-use' });
    await zk.storeNode(theirs);
    await call({ op: 'lock', name: 'theirs', path: paths.nodeLock(theirs.id ?? ''), identifier: OWNER });
    assert.deepEqual(await call({ op: 'acquire', name: 'theirs', ephemeral: false }), { ok: true });
    await call({ op: 'close' });
    assert.deepEqual(await zk.getNodeLockContenders(theirs.id ?? ''), [OWNER], 'kept after kazoo\'s session closed');
    assert.equal(await zk.forceUnlockNode(theirs.id ?? '', OWNER), true);
    assert.equal(await zk.isNodeLocked(theirs.id ?? ''), false);
  } finally {
    await py.close();
    await zk.close();
    await dropChroot(chroot);
  }
});
