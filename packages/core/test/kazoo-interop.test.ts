// Interoperation with the real kazoo (Debian's python3-kazoo), the library Nodepool and Zuul use:
// locks both ways, contenders, JSON both ways with unknown keys, Zuul-style ephemeral requests,
// image pause flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newNode, newNodeRequest, nodeToJson, requestToJson } from '../src/model/index.js';
import { Lock, RequestCache, paths, type ZooKeeper } from '../src/zk/index.js';
import { PyProcess, ZK_SERVER, connectZk, dropChroot, eventually, uniqueChroot } from './zk-helpers.js';

type Reply = Record<string, unknown>;

class Kazoo {
  private readonly py: PyProcess;
  constructor(chroot: string) {
    this.py = new PyProcess('agent.py', [`${ZK_SERVER}${chroot}`]);
  }
  async ready(): Promise<void> {
    assert.deepEqual(JSON.parse(await this.py.next(30_000)), { ready: true });
  }
  send(cmd: Reply): void {
    this.py.send(JSON.stringify(cmd));
  }
  async reply(timeoutMs?: number): Promise<Reply> {
    return JSON.parse(await this.py.next(timeoutMs)) as Reply;
  }
  async call(cmd: Reply): Promise<Reply> {
    this.send(cmd);
    const r = await this.reply();
    if (typeof r['error'] === 'string' && r['error'] !== 'LockTimeout') throw new Error(`kazoo: ${r['error']}`);
    return r;
  }
  async close(): Promise<void> {
    try {
      await this.call({ op: 'close' });
    } catch {
      // already closed
    }
    await this.py.close();
  }
}

async function withKazoo(fn: (zk: ZooKeeper, py: Kazoo) => Promise<void>): Promise<void> {
  const chroot = uniqueChroot();
  const zk = await connectZk(chroot);
  await zk.mkdirp(paths.root); // the chroot must exist before kazoo uses it
  const py = new Kazoo(chroot);
  try {
    await py.ready();
    await fn(zk, py);
  } finally {
    await py.close();
    await zk.close();
    await dropChroot(chroot);
  }
}

test('(a) kazoo holds a node lock: our blocking lock waits and gets it after kazoo releases', { timeout: 60_000 }, async () => {
  await withKazoo(async (zk, py) => {
    const node = newNode({ state: 'ready' });
    await zk.storeNode(node);
    const id = node.id ?? '';
    await py.call({ op: 'lock', name: 'n', path: paths.nodeLock(id) });
    assert.deepEqual(await py.call({ op: 'acquire', name: 'n', blocking: false }), { ok: true });
    assert.equal(await zk.isNodeLocked(id), true);
    assert.equal(await zk.lockNode(node), false, 'non-blocking fails while kazoo holds it');
    let got = false;
    const p = zk.lockNode(node, { blocking: true, timeoutMs: 20_000 }).then((r) => {
      got = r;
      return r;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(got, false);
    assert.deepEqual(await py.call({ op: 'release', name: 'n' }), { ok: true });
    assert.equal(await p, true);
    assert.ok(zk.holdsLock(node));
    await zk.unlockNode(node);
  });
});

test('(b) we hold a node lock: kazoo non-blocking fails, blocking succeeds after our release', { timeout: 60_000 }, async () => {
  await withKazoo(async (zk, py) => {
    const node = newNode({ state: 'ready' });
    await zk.storeNode(node);
    const id = node.id ?? '';
    assert.ok(await zk.lockNode(node));
    await py.call({ op: 'lock', name: 'n', path: paths.nodeLock(id) });
    assert.deepEqual(await py.call({ op: 'acquire', name: 'n', blocking: false }), { ok: false });
    assert.deepEqual(await py.call({ op: 'acquire', name: 'n', blocking: true, timeout: 0.5 }), { error: 'LockTimeout' });
    py.send({ op: 'acquire', name: 'n', blocking: true, timeout: 20 });
    await new Promise((r) => setTimeout(r, 300));
    await zk.unlockNode(node);
    assert.deepEqual(await py.reply(20_000), { ok: true });
    assert.equal(await zk.isNodeLocked(id), true, 'kazoo holds it now');
    assert.deepEqual(await py.call({ op: 'release', name: 'n' }), { ok: true });
    assert.equal(await zk.isNodeLocked(id), false);
  });
});

test('(c) kazoo Lock.contenders() sees our contenders and we see kazoo\'s, in order', { timeout: 60_000 }, async () => {
  await withKazoo(async (zk, py) => {
    const path = paths.statsElection;
    const ours = new Lock(zk, path, 'ts-host-1');
    assert.ok(await ours.acquire());
    await py.call({ op: 'lock', name: 'e', path, identifier: 'py-host-2' });
    assert.deepEqual(await py.call({ op: 'contenders', name: 'e' }), { contenders: ['ts-host-1'] });
    py.send({ op: 'acquire', name: 'e', blocking: true, timeout: 20 });
    await eventually(async () => (await zk.getChildren(path)).length === 2, 10_000, 'kazoo contending');
    assert.deepEqual(await ours.contenders(), ['ts-host-1', 'py-host-2']);
    await ours.release();
    assert.deepEqual(await py.reply(20_000), { ok: true });
    assert.deepEqual(await ours.contenders(), ['py-host-2']);
    // and our waiter behind kazoo's holder
    const waiter = new Lock(zk, path, 'ts-host-3');
    const p = waiter.acquire({ timeoutMs: 20_000 });
    await eventually(async () => (await zk.getChildren(path)).length === 2, 10_000, 'we are contending');
    assert.deepEqual(await py.call({ op: 'contenders', name: 'e' }), { contenders: ['py-host-2', 'ts-host-3'] });
    await py.call({ op: 'release', name: 'e' });
    assert.equal(await p, true);
    await waiter.release();
  });
});

test('(d) JSON both ways: kazoo reads what we wrote; unknown keys kazoo wrote survive our rewrite', { timeout: 60_000 }, async () => {
  await withKazoo(async (zk, py) => {
    const node = newNode({
      state: 'ready', provider: 'rax', pool: 'main', type: ['ubuntu-bionic'], hostname: 'h-\u00e9',
      resources: { cores: 8, instances: 1, ram: 8192 }, attributes: { zone: 'vpn' }, host_keys: ['ssh-rsa AAA'],
    });
    await zk.storeNode(node);
    const nodePath = paths.node(node.id ?? '');
    const got = await py.call({ op: 'get', path: nodePath });
    assert.deepEqual(got['loaded'], JSON.parse(nodeToJson(node)));
    assert.equal(got['raw'], got['redumped'], 'our bytes are exactly json.dumps of the same dict');

    const req = newNodeRequest({ node_types: ['a', 'b'], requestor: 'zuul01' });
    const rid = await zk.submitNodeRequest(req, '100');
    const gotReq = await py.call({ op: 'get', path: paths.request(rid) });
    assert.deepEqual(gotReq['loaded'], JSON.parse(requestToJson(req)));
    assert.equal(gotReq['raw'], gotReq['redumped']);

    // Zuul (newer) writes extra keys into a request and a node it holds ...
    const zuulReq = { ...(gotReq['loaded'] as Reply), event_id: 'ev-42', created_time: 1555531533.25, tenant_name: 'tenant-\u00fc', requestor_data: { a: [1, 2] } };
    await py.call({ op: 'set', path: paths.request(rid), value: zuulReq });
    const zuulNode = { ...(got['loaded'] as Reply), state: 'in-use', zuul_specific: { build: 'b1' } };
    await py.call({ op: 'set', path: nodePath, value: zuulNode });

    // ... we read them, change what Nodepool changes, write back ...
    const r = await zk.getNodeRequest(rid);
    assert.ok(r);
    assert.deepEqual(r.extra, { event_id: 'ev-42', created_time: 1555531533.25, tenant_name: 'tenant-\u00fc', requestor_data: { a: [1, 2] } });
    r.state = 'fulfilled';
    r.nodes = [node.id ?? ''];
    await zk.storeNodeRequest(r);
    const n = await zk.getNode(node.id ?? '');
    assert.ok(n);
    assert.equal(n.state, 'in-use');
    n.state = 'used';
    await zk.storeNode(n);

    // ... and kazoo still sees every key it wrote.
    const back = (await py.call({ op: 'get', path: paths.request(rid) }))['loaded'] as Reply;
    assert.deepEqual(back, { ...zuulReq, state: 'fulfilled', state_time: r.state_time, nodes: [node.id] });
    const backNode = await py.call({ op: 'get', path: nodePath });
    assert.deepEqual(backNode['loaded'], { ...zuulNode, state: 'used' });
    assert.equal(backNode['raw'], backNode['redumped']);
  });
});

test('(e) a Zuul-style ephemeral request from kazoo is seen by RequestCache and vanishes with its session', { timeout: 60_000 }, async () => {
  const chroot = uniqueChroot();
  const zk = await connectZk(chroot);
  await zk.mkdirp('/x'); // create the chroot only: kazoo's makepath creates /nodepool/requests
  const cache = new RequestCache(zk);
  const py = new Kazoo(chroot);
  try {
    await py.ready();
    await cache.start();
    const body = { state: 'requested', state_time: 1555531533.4567893, node_types: ['ubuntu-bionic'], requestor: 'zuul01', relative_priority: 0, event_id: 'e-1' };
    const created = await py.call({ op: 'create', path: '/nodepool/requests/200-', value: body, ephemeral: true, sequence: true, makepath: true });
    const id = paths.basename(String(created['path']));
    assert.match(id, /^200-\d{10}$/);
    await eventually(() => cache.get(id) !== undefined, 10_000, 'request in cache');
    const cached = cache.get(id);
    assert.equal(cached?.state, 'requested');
    assert.deepEqual(cached?.node_types, ['ubuntu-bionic']);
    assert.equal(cached?.reuse, true);
    assert.deepEqual(cached?.extra, { event_id: 'e-1' });
    await py.close();
    await eventually(() => cache.get(id) === undefined, 10_000, 'request gone with the kazoo session');
  } finally {
    cache.stop();
    await py.close();
    await zk.close();
    await dropChroot(chroot);
  }
});

test('(f) image pause flags are the same znode for kazoo (Nodepool 4+) and us', { timeout: 60_000 }, async () => {
  await withKazoo(async (zk, py) => {
    // Nodepool's setImagePaused: an empty znode at /nodepool/images/<image>/pause
    await py.call({ op: 'create', path: '/nodepool/images/from-kazoo/pause', value: '', makepath: true });
    assert.equal(await zk.isImagePaused('from-kazoo'), true);
    await zk.setImagePaused('from-us', true);
    const got = await py.call({ op: 'get', path: '/nodepool/images/from-us/pause' });
    assert.equal(got['raw'], '', 'no data, as Nodepool writes it');
    assert.deepEqual(((await py.call({ op: 'children', path: '/nodepool/images' }))['children'] as string[]).sort(), ['from-kazoo', 'from-us']);
    await zk.setImagePaused('from-kazoo', false);
    assert.equal((await py.call({ op: 'get', path: '/nodepool/images/from-kazoo/pause' }))['nonode'], true);
  });
});
