// A dropped ZooKeeper connection (an ensemble member stopped) under a running launcher: the
// session survives, only the requests in flight fail with a connection loss, applied or not. A
// launcher that gave up on such a failure while holding a lock kept the lock for the life of its
// session: a node request nobody could answer, a used node nobody deleted. Here the first read or
// write the launcher makes of a request (or of a used node) without a watch, i.e. under its
// lock, is sent, and its reply is lost: the connection is dropped for real (the client's socket
// destroyed; it reconnects in the same session) and the caller gets CONNECTION_LOSS, as from
// node-zookeeper-client for any request in flight on a dropped connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import zookeeper from 'node-zookeeper-client';
import { newNodeRequest } from '@nodepool-ts/core/model';
import { paths, type ZooKeeper } from '@nodepool-ts/core/zk';
import { Launcher } from '@nodepool-ts/launcher';
import { connectZk, fakeConfig, testEnv, waitFor } from '../helpers/harness.js';

/** Drop the TCP connection of a client; node-zookeeper-client reconnects in the same session. */
function dropConnection(zk: ZooKeeper): void {
  const cm = (zk.client as unknown as { connectionManager: { socket?: { destroy(): void } } }).connectionManager;
  cm.socket?.destroy();
}

type Callback = (err: unknown, ...rest: unknown[]) => void;

/** The library's own CONNECTION_LOSS error (its `Exception.create` is missing from the typings). */
function connectionLoss(): Error {
  const { Exception } = zookeeper as unknown as { Exception: { create(code: number): Error; CONNECTION_LOSS: number } };
  return Exception.create(Exception.CONNECTION_LOSS);
}

/**
 * The first unwatched getData, or setData, of a path `match` accepts (after `skip` such calls)
 * is sent as usual, but its reply is lost with the connection: the caller gets CONNECTION_LOSS.
 */
function loseOneReply(zk: ZooKeeper, match: (path: string) => boolean, skip = 0): { lost: string | null } {
  const state: { lost: string | null } = { lost: null };
  let seen = 0;
  const raw = zk.client as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const op of ['getData', 'setData']) {
    const original = raw[op];
    if (!original) throw new Error(`no ${op}`);
    raw[op] = (...args: unknown[]) => {
      const path = String(args[0]);
      const watched = op === 'getData' && args.length === 3;
      const cb = args[args.length - 1] as Callback;
      if (state.lost === null && !watched && match(path) && seen++ >= skip) {
        state.lost = `${op} ${path}`;
        args[args.length - 1] = () => {
          dropConnection(zk);
          cb(connectionLoss());
        };
      }
      return original.apply(raw, args);
    };
  }
  return state;
}

// (the launcher's first and second read or write of the request: whichever they are)
for (const skip of [0, 1]) test(`a reply lost with the connection while a launcher holds a request does not strand the request (call ${skip + 1})`, async () => {
  const env = testEnv();
  const zk = await connectZk(env);
  const launcher = new Launcher({ configFile: env.write('nodepool.yaml', fakeConfig(env)), hostname: 'test', watchIntervalMs: 0 });
  await launcher.start();
  try {
    await waitFor('launcher registered', async () => (await zk.getRegisteredLaunchers()).length === 1);
    // (the only request: the launcher reads or writes it once it holds its lock)
    const fault = loseOneReply(launcher.zk, (p) => p.startsWith(`${paths.requestsRoot}/`), skip);
    const target = await zk.submitNodeRequest(newNodeRequest({ node_types: ['fake-label'], requestor: 'conn-loss-test' }), '200');
    const done = await waitFor('request answered', async () => {
      const r = await zk.getNodeRequest(target);
      return r && (r.state === 'fulfilled' || r.state === 'failed') ? r : null;
    }, 30_000);
    assert.ok(fault.lost, 'a reply to the launcher was lost');
    assert.equal(done.state, 'fulfilled');
    // and it stays answered: the handler is done without changing it (a launcher that took its
    // lost reply for a failure declined the request after it had been fulfilled)
    const answered = await zk.getDataStat(paths.request(target));
    await waitFor('the handler done', () => !launcher.ownsRequest(target), 30_000);
    const after = await zk.getDataStat(paths.request(target));
    assert.ok(answered && after);
    // (the same answer written again, its first reply lost, is no change)
    assert.equal(after.data.toString(), answered.data.toString(), 'request rewritten after its answer');
    assert.equal(launcher.zk.sessionGeneration, 0, 'the session survived the dropped connection');
  } finally {
    await launcher.stop();
    await zk.close();
    env.cleanup();
  }
});

test('a reply lost with the connection while a launcher deletes a used node does not leave the node locked', async () => {
  const env = testEnv();
  const zk = await connectZk(env);
  const launcher = new Launcher({ configFile: env.write('nodepool.yaml', fakeConfig(env)), hostname: 'test', watchIntervalMs: 0 });
  await launcher.start();
  try {
    const id = await zk.submitNodeRequest(newNodeRequest({ node_types: ['fake-label'], requestor: 'conn-loss-test' }), '200');
    const req = await waitFor('request fulfilled', async () => {
      const r = await zk.getNodeRequest(id);
      return r && r.state === 'fulfilled' ? r : null;
    }, 30_000);
    const nodeId = req.nodes[0] ?? '';
    const node = await zk.getNode(nodeId);
    assert.ok(node);
    // Zuul: lock, in-use, used, unlock; the launcher's first read or write of the node after
    // locking it to delete it loses its reply with the connection.
    assert.ok(await zk.lockNode(node, { blocking: true, timeoutMs: 10_000 }));
    await zk.deleteNodeRequest(id);
    node.state = 'in-use';
    await zk.storeNode(node);
    const fault = loseOneReply(launcher.zk, (p) => p === paths.node(nodeId));
    node.state = 'used';
    await zk.storeNode(node);
    await zk.unlockNode(node);
    // (a failed deletion is retried after 5 s; a node whose lock was kept stayed for ever)
    await waitFor('used node deleted', async () => (await zk.getNode(nodeId)) === null, 20_000);
    assert.ok(fault.lost, 'a reply to the launcher was lost');
    assert.equal(launcher.zk.sessionGeneration, 0, 'the session survived the dropped connection');
  } finally {
    await launcher.stop();
    await zk.close();
    env.cleanup();
  }
});
