// A launcher killed with -9 while servers boot, and whose node znodes then vanish, leaks those
// servers. The next launcher's cleanup finds them by Nodepool's metadata and deletes them —
// and nothing else: a server of another provider and a hand-made one stay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Launcher } from '@nodepool-ts/launcher';
import { connectZk, testEnv, waitFor } from '../helpers/harness.js';
import { simApi, simToken, netId } from '../../packages/drivers/openstack/test/helpers.js';
import { freePort, openstackConfig, startSim, submit } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');

test('servers leaked by a launcher killed with -9 are deleted by the next one, only ours', async () => {
  const sim = await startSim({ faults: { bootResult: 'BUILD' } }); // servers stay in BUILD: killed mid-launch
  const env = testEnv();
  const config = env.write('nodepool.yaml', openstackConfig(env, sim, await freePort()));
  const childEnv = {
    ...process.env, OS_CLIENT_CONFIG_FILE: join(env.dir, 'clouds.yaml'), NODEPOOL_STATE_DIR: env.dir,
    NODEPOOL_OPENSTACK_POLL_INTERVAL: '0.05',
  };
  const zk = await connectZk(env);
  let launcher: Launcher | null = null;
  const log = openSync(join(env.dir, 'launcher-1.log'), 'a');
  const child = spawn(process.execPath, [join(ROOT, 'packages/launcher/bin/nodepool-launcher.js'), '-c', config, '-f',
    '--no-webapp', '--no-history'], { env: childEnv, stdio: ['ignore', log, log] });
  try {
    // servers that are not this launcher's to clean
    const token = await simToken(sim);
    const image = [...sim.state.images.values()][0]?.id;
    for (const [name, metadata] of [['ops-box', {}], ['other-provider', { nodepool_provider_name: 'other', nodepool_node_id: '0000000099' }]] as const) {
      const r = await simApi(sim, token, 'POST', '/compute/v2.1/servers', {
        server: { name, flavorRef: '1', imageRef: image, metadata, networks: [{ uuid: netId(sim, 'private') }] },
      });
      assert.equal(r.status, 202);
    }
    const foreign = new Set(sim.state.servers.keys());

    await submit(zk, ['fip']);
    await submit(zk, ['small']);
    const launched = await waitFor('two servers created and recorded', async () => {
      const nodes = (await zk.getNodes()).filter((n) => n.external_id !== null);
      return nodes.length === 2 ? nodes : null;
    }, 30_000);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // the node records vanish (lost ZooKeeper data, a careless operator): the servers are leaked
    for (const n of await zk.getNodes()) await zk.deleteRawNode(n.id ?? '');
    for (const id of await zk.getNodeRequestIds()) await zk.deleteNodeRequest(id);
    const leaked = launched.map((n) => n.external_id);
    assert.deepEqual(leaked.filter((id) => sim.state.servers.has(id ?? '')).length, 2);

    process.env.OS_CLIENT_CONFIG_FILE = childEnv.OS_CLIENT_CONFIG_FILE;
    process.env.NODEPOOL_STATE_DIR = env.dir;
    process.env.NODEPOOL_OPENSTACK_POLL_INTERVAL = '0.05';
    launcher = new Launcher({ configFile: config, hostname: 'second', watchIntervalMs: 0, cleanupIntervalMs: 60_000 });
    await launcher.start();
    await launcher.runCleanup();
    await waitFor('leaked servers deleted', () => leaked.every((id) => !sim.state.servers.has(id ?? '')), 20_000);
    assert.deepEqual(new Set(sim.state.servers.keys()), foreign, 'only our leaked servers were deleted');
    await waitFor('artificial deleting records removed', async () => (await zk.getNodes()).length === 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await launcher?.stop();
    await zk.close();
    await sim.stop();
    env.cleanup();
  }
});
