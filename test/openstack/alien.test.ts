// `nodepool alien-image-list` against the simulator: Glance images carrying nodepool_build_id that
// no READY upload in ZooKeeper accounts for, in Nodepool's table; cloud images without Nodepool's
// properties never show; an unreachable cloud is a warning, not a crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { newImageBuild, newImageUpload } from '@nodepool-ts/core/model';
import { connectZk, testEnv } from '../helpers/harness.js';
import { simToken } from '../../packages/drivers/openstack/test/helpers.js';
import { freePort, openstackConfig, startSim } from './helpers.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');

async function glanceImage(base: string, token: string, name: string, props: Record<string, string>): Promise<string> {
  const r = await fetch(`${base}/image/v2/images`, {
    method: 'POST', headers: { 'X-Auth-Token': token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, disk_format: 'qcow2', container_format: 'bare', visibility: 'private', ...props }),
  });
  return (await r.json() as { id: string }).id;
}

test('alien-image-list shows Nodepool-tagged Glance images that ZooKeeper does not know', async () => {
  const sim = await startSim();
  const env = testEnv();
  const config = env.write('nodepool.yaml', openstackConfig(env, sim, await freePort()));
  const zk = await connectZk(env);
  try {
    const token = await simToken(sim);
    const known = await glanceImage(sim.base, token, 'ubuntu-1700000000', { nodepool_build_id: '0000000000', nodepool_upload_id: '0000000000' });
    const alien = await glanceImage(sim.base, token, 'ubuntu-1600000000', { nodepool_build_id: '0000000007', nodepool_upload_id: '0000000001' });
    await glanceImage(sim.base, token, 'hand-made', {});
    const buildId = await zk.storeBuild('ubuntu', newImageBuild({ state: 'ready', builder: 'b1', formats: ['qcow2'] }));
    await zk.storeImageUpload('ubuntu', buildId, 'sim', newImageUpload({ state: 'ready', external_id: known, format: 'qcow2' }));

    const cliEnv = { ...process.env, OS_CLIENT_CONFIG_FILE: join(env.dir, 'clouds.yaml'), NODEPOOL_STATE_DIR: env.dir };
    const { stdout } = await run(process.execPath, [join(ROOT, 'packages/cli/bin/nodepool.js'), '-c', config, 'alien-image-list'],
      { env: cliEnv, timeout: 30_000 });
    const pad = (s: string, n: number): string => s.padEnd(n);
    const w = [8, 17, alien.length];
    const sep = `+${w.map((n) => '-'.repeat(n + 2)).join('+')}+`;
    assert.equal(stdout, [
      sep,
      `| ${pad('Provider', w[0] ?? 0)} | ${pad('Name', w[1] ?? 0)} | ${pad('Image ID', w[2] ?? 0)} |`,
      sep,
      `| ${pad('sim', w[0] ?? 0)} | ${pad('ubuntu-1600000000', w[1] ?? 0)} | ${alien} |`,
      sep,
      '',
    ].join('\n'));

    // the cloud goes down: a warning naming the provider, and an empty table
    await sim.stop();
    const down = await run(process.execPath, [join(ROOT, 'packages/cli/bin/nodepool.js'), '-c', config, 'alien-image-list', 'sim'],
      { env: cliEnv, timeout: 60_000 });
    assert.match(down.stderr, /WARNING nodepool\.cmd\.nodepoolcmd: Exception listing alien images for sim: cloud sim is unreachable/);
    assert.doesNotMatch(down.stderr, /secret-demo-pw/);
    assert.equal(down.stdout, '+----------+------+----------+\n| Provider | Name | Image ID |\n+----------+------+----------+\n+----------+------+----------+\n');
  } finally {
    await zk.close();
    await sim.stop();
    env.cleanup();
  }
});
