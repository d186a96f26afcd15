// ZooKeeper session expiry under a running launcher: ephemeral state re-registered, requests
// still served, no node allocated twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newNodeRequest } from '@nodepool-ts/core/model';
import { Launcher } from '@nodepool-ts/launcher';
import { expireSession } from '../../packages/core/test/zk-helpers.js';
import { connectZk, fakeConfig, testEnv, waitFor } from '../helpers/harness.js';

test('after a forced session expiry the launcher re-registers and serves again', async () => {
  const env = testEnv();
  const zk = await connectZk(env);
  const launcher = new Launcher({ configFile: env.write('nodepool.yaml', fakeConfig(env, { labels: [{ name: 'fake-label', minReady: 1 }] })), hostname: 'test', watchIntervalMs: 0 });
  await launcher.start();
  try {
    await waitFor('min-ready node', async () => (await zk.getNodes()).some((n) => n.state === 'ready'));
    const before = await zk.getRegisteredLaunchers();
    assert.equal(before.length, 1);
    // a request the launcher holds while its session dies
    const held = await zk.submitNodeRequest(newNodeRequest({ node_types: ['fake-label'] }), '200');
    await expireSession(launcher.zk);
    await waitFor('launcher re-registered', async () => (await zk.getRegisteredLaunchers()).length === 1);
    const req = await waitFor('held request served', async () => {
      const r = await zk.getNodeRequest(held);
      return r && (r.state === 'fulfilled' || r.state === 'failed') ? r : null;
    }, 30_000);
    assert.equal(req.state, 'fulfilled');
    const after = await waitFor('new request served', async () => {
      const id = await zk.submitNodeRequest(newNodeRequest({ node_types: ['fake-label'] }), '200');
      return waitFor('done', async () => {
        const r = await zk.getNodeRequest(id);
        return r && r.state === 'fulfilled' ? r : null;
      });
    });
    assert.equal(after.state, 'fulfilled');
    const nodes = await zk.getNodes();
    const allocated = nodes.map((n) => n.allocated_to).filter((a) => a !== null);
    assert.equal(new Set(allocated).size, allocated.length, 'no node allocated twice');
  } finally {
    await launcher.stop();
    await zk.close();
    env.cleanup();
  }
});

test('zookeeper-timeout in nodepool.yaml is the session timeout the launcher asks ZooKeeper for', async () => {
  const env = testEnv();
  const launcher = new Launcher({
    configFile: env.write('nodepool.yaml', fakeConfig(env, { top: 'zookeeper-timeout: 7.5' })), hostname: 'test', watchIntervalMs: 0,
  });
  await launcher.start();
  try {
    // negotiated by the server, within its bounds (scripts/zk.sh: 1 s to 60 s)
    assert.equal(launcher.zk.sessionTimeout, 7500);
  } finally {
    await launcher.stop();
  }
});

test('a stop while starting (a signal at start-up): start gives up and nothing keeps running', async () => {
  const env = testEnv();
  const zk = await connectZk(env);
  try {
    const cfg = env.write('nodepool.yaml', fakeConfig(env, { labels: [{ name: 'fake-label', minReady: 1 }] }));
    for (const when of ['during the config load', 'once connected']) {
      const launcher = new Launcher({ configFile: cfg, hostname: 'test', watchIntervalMs: 100 });
      const starting = launcher.start().then(() => 'started', (err: Error) => err.message);
      if (when === 'once connected') await waitFor('session', () => launcher.zk?.state === 'connected', 20_000, 1);
      await launcher.stop();
      const outcome = await starting;
      if (when === 'during the config load') assert.equal(outcome, 'nodepool-launcher stopped while starting');
      assert.notEqual(launcher.zk?.state, 'connected', `${when}: session closed`);
      // a launcher left running would register and launch its min-ready node
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(await zk.getRegisteredLaunchers(), [], when);
      assert.equal((await zk.getNodes()).filter((n) => n.state !== 'deleting' && n.state !== 'deleted').length, 0, when);
    }
  } finally {
    await zk.close();
    env.cleanup();
  }
});
