// kill -9 of a launcher process mid-launch: no request is lost, and every server it started is
// used or deleted within one cleanup cycle of the launcher that takes over.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { newNodeRequest } from '@nodepool-ts/core/model';
import { createFakeProvider } from '@nodepool-ts/driver-fake';
import { loadConfig, type FakeProvider } from '@nodepool-ts/core/config';
import { Launcher } from '@nodepool-ts/launcher';
import { connectZk, fakeConfig, testEnv, waitFor } from '../helpers/harness.js';

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

test('kill -9 mid-launch loses no request and leaks no server beyond one cleanup cycle', async () => {
  const env = testEnv();
  const zk = await connectZk(env);
  const stateFile = `${env.dir}/fake-cloud.json`;
  const cfg = env.write('nodepool.yaml', fakeConfig(env, {
    providerExtra: `    state-file: ${stateFile}\n    faults:\n      boot-delay: 1.5\n`,
  }));
  const proc = spawn(process.execPath, ['packages/launcher/bin/nodepool-launcher.js', '-f', '-c', cfg,
    '-p', `${env.dir}/launcher.pid`, '--no-webapp'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODEPOOL_LOG_LEVEL: 'warn' } });
  children.push(proc);
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  await waitFor('launcher registered', async () => (await zk.getRegisteredLaunchers()).length === 1, 20_000)
    .catch((err: Error) => { throw new Error(`${err.message}\n${stderr}`); });

  const ids: string[] = [];
  for (let i = 0; i < 6; i++) {
    ids.push(await zk.submitNodeRequest(newNodeRequest({ node_types: ['fake-label'], requestor: 'crash-test' }), '200'));
  }
  // wait until servers are being built, then kill -9
  await waitFor('launches in flight', async () => (await zk.getNodes()).filter((n) => n.state === 'building').length >= 3);
  proc.kill('SIGKILL');
  await new Promise((r) => proc.once('exit', r));
  await waitFor('dead launcher unregistered', async () => (await zk.getRegisteredLaunchers()).length === 0, 30_000);

  const successor = new Launcher({ configFile: cfg, hostname: 'successor', watchIntervalMs: 0 });
  await successor.start();
  try {
    await successor.runCleanup();
    for (const id of ids) {
      const req = await waitFor(`request ${id} served`, async () => {
        const r = await zk.getNodeRequest(id);
        return r && (r.state === 'fulfilled' || r.state === 'failed') ? r : null;
      }, 30_000);
      assert.equal(req.state, 'fulfilled', `request ${id} was lost or failed`);
    }
    // One cleanup cycle later, every server in the cloud belongs to a live node znode.
    await successor.runCleanup();
    const config = await loadConfig(cfg);
    const provider = config.providers.get('fake-provider') as FakeProvider;
    const cloud = createFakeProvider(provider);
    await cloud.start();
    await waitFor('no leaked servers', async () => {
      const nodes = await zk.getNodes();
      const owned = new Set(nodes.filter((n) => n.state !== 'deleting').map((n) => n.external_id));
      const servers = (await cloud.listServers()).filter((s) => s.status !== 'DELETED');
      return servers.every((s) => owned.has(s.id));
    }, 20_000);
    await cloud.stop();
  } finally {
    await successor.stop();
    await zk.close();
    env.cleanup();
  }
});
