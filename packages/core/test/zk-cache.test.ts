// NodeCache / RequestCache: watch-fed, eventually equal to the uncached view, 10,000 nodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newNode, newNodeRequest, type Node } from '../src/model/index.js';
import { NodeCache, RequestCache, mapLimit, paths, type ZooKeeper } from '../src/zk/index.js';
import { connectZk, dropChroot, eventually, uniqueChroot } from './zk-helpers.js';

function sortById<T extends { id: string | null }>(xs: readonly T[]): T[] {
  return [...xs].sort((a, b) => ((a.id ?? '') < (b.id ?? '') ? -1 : 1));
}

async function cacheMatches(cache: NodeCache, zk: ZooKeeper): Promise<boolean> {
  const want = await zk.getNodes();
  const have = sortById(cache.all());
  try {
    assert.deepEqual(have, want);
    return true;
  } catch {
    return false;
  }
}

test('NodeCache eventually equals the uncached view through creates, updates, deletes, garbage', async () => {
  const chroot = uniqueChroot();
  const zk = await connectZk(chroot);
  const other = await connectZk(chroot);
  const cache = new NodeCache(zk);
  try {
    const pre = newNode({ state: 'ready', type: ['a'] });
    await other.storeNode(pre);
    await cache.start();
    assert.deepEqual(cache.all(), [pre]);
    assert.ok(Object.isFrozen(cache.get(pre.id ?? '')), 'cached values are frozen snapshots');

    const changes: Array<[string, string | null]> = [];
    cache.on('change', (id: string, n: Node | null) => changes.push([id, n ? n.state : null]));

    const nodes: Node[] = [];
    for (let i = 0; i < 20; i++) {
      const n = newNode({ state: 'building', type: ['a', 'b'], provider: 'p' });
      await other.storeNode(n);
      nodes.push(n);
    }
    for (const n of nodes.slice(0, 10)) {
      n.state = 'ready';
      await other.storeNode(n);
    }
    for (const n of nodes.slice(10, 15)) await other.deleteNode(n);
    await other.mkdirp(paths.node('0000009999')); // empty: not a node
    await other.create(paths.node('0000009998'), Buffer.from('{not json'), 'persistent');
    await eventually(() => cacheMatches(cache, zk), 10_000, 'cache == getNodes()');
    assert.equal(cache.get('0000009999'), undefined);
    assert.equal(cache.get('0000009998'), undefined);
    assert.ok(cache.ids().includes('0000009999'));
    assert.ok(changes.some(([, s]) => s === 'ready'));
    assert.ok(changes.some(([, s]) => s === null));

    // a once-garbage znode that gets real data appears, and a node turned to garbage disappears
    await other.setData(paths.node('0000009998'), Buffer.from('{"state": "hold"}'));
    await other.setData(paths.node(nodes[0]?.id ?? ''), Buffer.alloc(0));
    await eventually(() => cacheMatches(cache, zk), 10_000, 'cache == getNodes() after garbage changes');
    assert.equal(cache.get('0000009998')?.state, 'hold');

    const ready = cache.readyNodesOfTypes(['a', 'b', 'c']);
    assert.equal(ready.get('a')?.length, 10, 'pre + 9 ready multi-label nodes');
    assert.equal(ready.get('b')?.length, 9);
    assert.equal(ready.get('c'), undefined);
  } finally {
    cache.stop();
    await zk.close();
    await other.close();
    await dropChroot(chroot);
  }
});

test('RequestCache sees ephemeral requests appear, change and vanish with their session', async () => {
  const chroot = uniqueChroot();
  const zk = await connectZk(chroot);
  const zuul = await connectZk(chroot);
  const cache = new RequestCache(zk);
  try {
    await cache.start();
    assert.deepEqual(cache.all(), []);
    const r = newNodeRequest({ node_types: ['x'], requestor: 'zuul', extra: { event_id: 'ev1' } });
    const id = await zuul.submitNodeRequest(r, '200');
    await eventually(() => cache.get(id) !== undefined, 5000, 'request cached');
    assert.deepEqual(cache.get(id), r);
    r.state = 'pending';
    await zuul.storeNodeRequest(r);
    await eventually(() => cache.get(id)?.state === 'pending', 5000, 'update cached');
    await zuul.close();
    await eventually(() => cache.get(id) === undefined, 5000, 'request gone with its session');
  } finally {
    cache.stop();
    await zk.close();
    await zuul.close();
    await dropChroot(chroot);
  }
});

test('NodeCache with 10,000 nodes: initial load, then tracks changes', { timeout: 180_000 }, async () => {
  const chroot = uniqueChroot();
  const zk = await connectZk(chroot);
  const writer = await connectZk(chroot);
  const cache = new NodeCache(zk);
  try {
    const N = 10_000;
    const nodes = Array.from({ length: N }, (_, i) => newNode({ state: 'ready', type: [`label-${i % 7}`], provider: 'p', hostname: `h${i}` }));
    const t0 = Date.now();
    await mapLimit(nodes, 256, (n) => writer.storeNode(n));
    const tWrite = Date.now() - t0;
    const t1 = Date.now();
    await cache.start();
    const tLoad = Date.now() - t1;
    assert.equal(cache.all().length, N);
    // the uncached read path must batch too
    const t2 = Date.now();
    assert.equal((await zk.getNodes()).length, N);
    const tGet = Date.now() - t2;
    console.log(`# 10k nodes: write ${tWrite} ms, cache load ${tLoad} ms, getNodes ${tGet} ms`);
    assert.ok(tLoad < 30_000, `cache load took ${tLoad} ms`);

    const t3 = Date.now();
    for (let i = 0; i < 100; i++) {
      const n = nodes[i * 50] as Node;
      n.state = 'in-use';
    }
    await Promise.all(nodes.filter((n) => n.state === 'in-use').map((n) => writer.storeNode(n)));
    await eventually(() => cache.all().filter((n) => n.state === 'in-use').length === 100, 10_000, '100 updates cached');
    let all = 0;
    const tAll = Date.now();
    for (let i = 0; i < 100; i++) all += cache.all().length;
    console.log(`# 100 updates visible after ${Date.now() - t3} ms; 100 x all() in ${Date.now() - tAll} ms`);
    assert.equal(all, 100 * N);
  } finally {
    cache.stop();
    await zk.close();
    await writer.close();
    await dropChroot(chroot);
  }
});

test('current(): after a lock taken later than a change, the cache offers the new value or none, never the old', async () => {
  const chroot = uniqueChroot();
  const zk = await connectZk(chroot);
  const other = await connectZk(chroot);
  const cache = new NodeCache(zk);
  try {
    const n = newNode({ state: 'ready', type: ['a'], provider: 'p' });
    await other.storeNode(n);
    await cache.start();
    assert.equal(cache.current(n.id ?? '')?.state, 'ready');
    for (let i = 0; i < 40; i++) {
      const want = i % 2 === 0 ? 'in-use' : 'ready';
      n.state = want;
      n.comment = `round ${i}`;
      await other.storeNode(n); // done before our lock request is even sent
      const ref = newNode({ ...n });
      assert.equal(await zk.lockNode(ref), true);
      const cur = cache.current(n.id ?? '');
      if (cur !== undefined) {
        assert.equal(cur.comment, `round ${i}`, 'a value offered as current is the latest');
      }
      await zk.unlockNode(ref);
    }
    // the check is not vacuous: once the watch reads settle, the value is offered
    await eventually(() => cache.current(n.id ?? '')?.comment === 'round 39');
  } finally {
    cache.stop();
    await zk.close();
    await other.close();
    await dropChroot(chroot);
  }
});
