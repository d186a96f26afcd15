// A launcher's stop lets its background passes finish what they began and begins nothing new:
// a min-ready pass or a deleted-node pass caught in the middle of a ZooKeeper call by stop() used
// to run on after the session was closed under it and log "ZooKeeper client closed" at error
// level (seen in benchmark runs). Each test holds one ZooKeeper call of the launcher back with a
// gate, stops the launcher meanwhile, then opens the gate.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configureLogging } from '@nodepool-ts/core/log';
import type { Node, NodeRequest } from '@nodepool-ts/core/model';
import { ZooKeeper } from '@nodepool-ts/core/zk';
import { fakeConfig, waitFor } from '../helpers/harness.js';
import { startLauncher } from '../helpers/launcher.js';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const logDir = mkdtempSync(join(tmpdir(), 'np-stop-'));
cleanups.push(() => rmSync(logDir, { recursive: true, force: true }));

/** Log to a file of this test's own; returns a reader of the lines logged at error level. */
function captureErrors(name: string): () => string[] {
  const file = join(logDir, `${name}.log`);
  configureLogging({ level: 'info', destination: file });
  return () => readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('"level":"error"'));
}

/** A gate: `entered` resolves when a held call arrives; `open()` lets it (and later ones) through. */
function gate() {
  let open!: () => void;
  let entered!: () => void;
  const opened = new Promise<void>((r) => { open = r; });
  const arrived = new Promise<void>((r) => { entered = r; });
  return { opened, arrived, open, entered };
}

async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let done = false;
  void p.then(() => { done = true; }, () => { done = true; });
  await new Promise((r) => setTimeout(r, ms));
  return done;
}

test('stop waits for the min-ready pass in flight, which submits nothing more and logs no error', async () => {
  const errors = captureErrors('min-ready');
  const g = gate();
  const original = ZooKeeper.prototype.submitNodeRequest;
  let minReadySubmits = 0;
  ZooKeeper.prototype.submitNodeRequest = async function (this: ZooKeeper, req: NodeRequest, priority: string) {
    if (req.requestor === 'NodePool:min-ready') {
      minReadySubmits += 1;
      g.entered();
      await g.opened;
    }
    return original.call(this, req, priority);
  };
  try {
    // three nodes wanted: the pass submits one request at a time and is held at the first
    const { launcher } = await startLauncher(cleanups, (env) => fakeConfig(env, { labels: [{ name: 'small', minReady: 3 }] }));
    await g.arrived;
    const stopping = launcher.stop();
    assert.equal(await settledWithin(stopping, 500), false, 'stop() returned while the min-ready pass was still in a ZooKeeper call');
    g.open();
    await stopping;
    assert.equal(minReadySubmits, 1, 'no min-ready request submitted after stop()');
    assert.deepEqual(errors(), []);
  } finally {
    ZooKeeper.prototype.submitNodeRequest = original;
    g.open();
  }
});

test('stop waits for a deleted-node pass taking a lock; the node is left for the next launcher, no error logged', async () => {
  const errors = captureErrors('deleted-node');
  const g = gate();
  const original = ZooKeeper.prototype.lockNode;
  ZooKeeper.prototype.lockNode = async function (this: ZooKeeper, node: Node, opts) {
    if (node.state === 'used') {
      g.entered();
      await g.opened;
    }
    return original.call(this, node, opts);
  };
  try {
    const { zk, launcher } = await startLauncher(cleanups, (env) => fakeConfig(env, { labels: [{ name: 'small', minReady: 1 }] }));
    const node = await waitFor('a ready node', async () => (await zk.getNodes()).find((n) => n.state === 'ready'), 20_000);
    node.state = 'used';
    await zk.storeNode(node);
    await g.arrived;
    const stopping = launcher.stop();
    assert.equal(await settledWithin(stopping, 500), false, 'stop() returned while the deleted-node pass was still taking a lock');
    g.open();
    await stopping;
    const after = await zk.getNode(node.id ?? '');
    assert.equal(after?.state, 'used', 'the node was not deleted after stop()');
    assert.deepEqual(errors(), []);
  } finally {
    ZooKeeper.prototype.lockNode = original;
    g.open();
  }
});

test('a pass whose ZooKeeper reply never comes holds the stop 10 s at most, with a warning', async () => {
  const file = join(logDir, 'bounded.log');
  configureLogging({ level: 'info', destination: file });
  const g = gate();
  const original = ZooKeeper.prototype.submitNodeRequest;
  ZooKeeper.prototype.submitNodeRequest = async function (this: ZooKeeper, req: NodeRequest, priority: string) {
    if (req.requestor === 'NodePool:min-ready') {
      g.entered();
      await g.opened;
    }
    return original.call(this, req, priority);
  };
  try {
    const { launcher } = await startLauncher(cleanups, (env) => fakeConfig(env, { labels: [{ name: 'small', minReady: 1 }] }));
    await g.arrived;
    const t0 = Date.now();
    await launcher.stop();
    const took = Date.now() - t0;
    assert.ok(took >= 9_000 && took < 20_000, `stop took ${took} ms`);
    assert.match(readFileSync(file, 'utf8'), /Min-ready pass still running after 10 s; stopping without it/);
  } finally {
    ZooKeeper.prototype.submitNodeRequest = original;
    g.open();
  }
});
