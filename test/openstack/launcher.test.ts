// The launcher end to end on the OpenStack simulator, through the real ZooKeeper: nodes booted
// from a cloud image and from a builder upload, host keys scanned from the server's sshd, quota
// from Nova limits, every injected fault retried or failed the way Nodepool does, and the
// servers of failed attempts cleaned up.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Launcher } from '@nodepool-ts/launcher';
import { newImageBuild, newImageUpload } from '@nodepool-ts/core/model';
import type { ZooKeeper } from '@nodepool-ts/core/zk';
import { connectZk, testEnv, waitFor, type TestEnv } from '../helpers/harness.js';
import type { OpenStackSim, SimOptions } from '../openstack-sim/index.js';
import { freePort, openstackConfig, release, startSim, submit, waitDone, type ConfigOverrides } from './helpers.js';

process.env.NODEPOOL_OPENSTACK_POLL_INTERVAL = '0.05';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Setup { env: TestEnv; zk: ZooKeeper; launcher: Launcher; sim: OpenStackSim; sshPort: number }

async function setup(opts: ConfigOverrides & { sim?: SimOptions } = {}): Promise<Setup> {
  const sshPort = await freePort();
  const sim = await startSim({ sshPort, ...(opts.sim ?? {}) });
  const env = testEnv();
  const config = env.write('nodepool.yaml', openstackConfig(env, sim, sshPort, opts));
  process.env.OS_CLIENT_CONFIG_FILE = join(env.dir, 'clouds.yaml');
  process.env.NODEPOOL_STATE_DIR = env.dir;
  const zk = await connectZk(env);
  const launcher = new Launcher({ configFile: config, hostname: 'os-e2e', watchIntervalMs: 0, cleanupIntervalMs: 60_000 });
  cleanups.push(async () => {
    await launcher.stop();
    await zk.close();
    await sim.stop();
    env.cleanup();
  });
  await launcher.start();
  return { env, zk, launcher, sim, sshPort };
}

/** Servers the simulator still has (the ones being deleted included). */
function servers(sim: OpenStackSim): string[] {
  return [...sim.state.servers.keys()];
}

test('a cloud-image node: booted, tagged, host keys scanned, then deleted when used', async () => {
  const { zk, sim, sshPort } = await setup();
  const req = await waitDone(zk, await submit(zk, ['small']));
  assert.equal(req.state, 'fulfilled');
  const node = await zk.getNode(req.nodes[0] ?? '');
  assert.ok(node);
  assert.equal(node.state, 'ready');
  assert.equal(node.provider, 'sim');
  assert.equal(node.pool, 'main');
  assert.equal(node.hostname, `small-sim-${node.id}`);
  assert.equal(node.image_id, 'cirros');
  assert.equal(node.username, 'cirros');
  assert.equal(node.connection_port, sshPort);
  assert.equal(node.az, 'nova');
  assert.deepEqual(node.resources, { cores: 1, instances: 1, ram: 2048 });
  assert.match(node.interface_ip ?? '', /^127\.42\./);
  const server = sim.state.servers.get(node.external_id ?? '');
  assert.ok(server, 'external_id is the Nova server id');
  assert.deepEqual(node.host_keys, [server.hostKey], 'the key the server\'s sshd presented');
  assert.deepEqual(server.metadata, {
    team: 'infra', groups: 'sim,cirros,small', nodepool_provider_name: 'sim', nodepool_node_id: node.id,
    nodepool_image_name: 'cirros', nodepool_node_label: 'small',
  });
  assert.equal(server.name, node.hostname);

  await release(zk, req);
  await waitFor('node gone', async () => (await zk.getNode(node.id ?? '')) === null);
  await waitFor('server gone', () => servers(sim).length === 0);
});

test('a node booted from a builder upload in Glance, with a floating IP from the external network', async () => {
  const { zk, sim } = await setup();
  // what the builder leaves in ZooKeeper after uploading to Glance
  const token = await (await import('../../packages/drivers/openstack/test/helpers.js')).simToken(sim);
  const created = await fetch(`${sim.base}/image/v2/images`, {
    method: 'POST', headers: { 'X-Auth-Token': token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'ubuntu-1700000000', disk_format: 'qcow2', container_format: 'bare', visibility: 'private', nodepool_build_id: '0000000000' }),
  });
  const image = await created.json() as { id: string };
  const put = await fetch(`${sim.base}/image/v2/images/${image.id}/file`, {
    method: 'PUT', headers: { 'X-Auth-Token': token, 'Content-Type': 'application/octet-stream' }, body: Buffer.alloc(4096),
  });
  assert.equal(put.status, 204);
  const buildId = await zk.storeBuild('ubuntu', newImageBuild({ state: 'ready', builder: 'b1', formats: ['qcow2'] }));
  const upload = newImageUpload({ state: 'ready', external_id: image.id, external_name: 'ubuntu-1700000000', username: 'zuul', format: 'qcow2' });
  await zk.storeImageUpload('ubuntu', buildId, 'sim', upload);

  // one request is served by one pool: the two labels live in different pools
  const req = await waitDone(zk, await submit(zk, ['built']));
  const req2 = await waitDone(zk, await submit(zk, ['fip']));
  assert.equal(req.state, 'fulfilled');
  assert.equal(req2.state, 'fulfilled');
  const built = await zk.getNode(req.nodes[0] ?? '');
  const fip = await zk.getNode(req2.nodes[0] ?? '');
  assert.ok(built && fip);
  assert.equal(sim.state.servers.get(built.external_id ?? '')?.imageId, image.id);
  assert.equal(built.username, 'zuul');
  assert.match(built.image_id ?? '', new RegExp(`^/nodepool/images/ubuntu/builds/${buildId}/providers/sim/images/\\d{10}$`));
  assert.deepEqual(built.resources, { cores: 2, instances: 1, ram: 4096 });
  assert.match(fip.public_ipv4 ?? '', /^172\.24\.4\./);
  assert.equal(fip.interface_ip, fip.public_ipv4);
  assert.match(fip.private_ipv4 ?? '', /^10\.1\./);
  assert.equal(sim.state.floatingIps.size, 1);
  await release(zk, req);
  await release(zk, req2);
  await waitFor('servers and floating IP gone', () => servers(sim).length === 0 && sim.state.floatingIps.size === 0);
});

test('quota from Nova limits, minus servers that are not ours: a request waits until a node is freed', async () => {
  const { zk, sim } = await setup({ sim: { limits: { instances: 3, cores: 200, ram: 1_000_000 } } });
  // someone else's server in the same project uses one instance
  const h = await import('../../packages/drivers/openstack/test/helpers.js');
  const token = await h.simToken(sim);
  const image = [...sim.state.images.values()][0]?.id;
  assert.equal((await h.simApi(sim, token, 'POST', '/compute/v2.1/servers', {
    server: { name: 'ops-box', flavorRef: '1', imageRef: image, networks: [{ uuid: h.netId(sim, 'private') }] },
  })).status, 202);
  const first = await waitDone(zk, await submit(zk, ['fip']));
  const second = await waitDone(zk, await submit(zk, ['fip']));
  assert.equal(first.state, 'fulfilled');
  assert.equal(second.state, 'fulfilled');
  const third = await submit(zk, ['fip']);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await zk.getNodeRequest(third))?.state, 'pending', 'no quota left: the request waits');
  assert.equal(servers(sim).length, 3);
  await release(zk, first);
  const done = await waitDone(zk, third);
  assert.equal(done.state, 'fulfilled');
  assert.equal(sim.calls('compute POST /v2.1/servers'), 1 + 3, 'Nova never had to refuse a server');
});

test('boot failures are retried: HTTP 500 on create, a server going to ERROR, one stuck in BUILD', async () => {
  const { zk, sim } = await setup({ launchTimeout: 1 });
  sim.addFaultRule({ service: 'compute', method: 'POST', path: '^/v2\\.1/servers$', status: 500, times: 1 });
  sim.setFaults({ errorNextBoots: 1 });
  let req = await waitDone(zk, await submit(zk, ['fip']));
  assert.equal(req.state, 'fulfilled');
  await waitFor('the ERROR server is deleted', () => servers(sim).length === 1);

  sim.setFaults({ stuckNextBoots: 1 });
  req = await waitDone(zk, await submit(zk, ['fip']));
  assert.equal(req.state, 'fulfilled');
  await waitFor('the stuck server is deleted', () => servers(sim).length === 2);
  assert.equal(sim.calls('compute POST /v2.1/servers'), 5);
});

test('a node whose every attempt fails is failed, and no server is left behind', async () => {
  const { zk, sim } = await setup();
  sim.setFaults({ errorNextBoots: 3 });
  const req = await waitDone(zk, await submit(zk, ['fip']));
  assert.equal(req.state, 'failed');
  assert.equal(sim.calls('compute POST /v2.1/servers'), 3, 'launch-retries: 3');
  await waitFor('ERROR servers deleted', () => servers(sim).length === 0);
});

test('quota exceeded in Nova aborts the node; the request is served once the cloud has room', async () => {
  const { zk, sim } = await setup();
  sim.setFaults({ quotaExceeded: true });
  const id = await submit(zk, ['fip']);
  await waitFor('a create refused for quota', () => sim.calls('compute POST /v2.1/servers') >= 1);
  await new Promise((r) => setTimeout(r, 300));
  assert.notEqual((await zk.getNodeRequest(id))?.state, 'failed');
  sim.setFaults({ quotaExceeded: false });
  const req = await waitDone(zk, id);
  assert.equal(req.state, 'fulfilled');
});

test('no address (and no floating IP wanted): the launch fails as a network error', async () => {
  const { zk, sim } = await setup();
  sim.setFaults({ noAddresses: true });
  const req = await waitDone(zk, await submit(zk, ['noip']));
  assert.equal(req.state, 'failed');
  await waitFor('servers deleted', () => servers(sim).length === 0);
});

test('sshd not answering: keyscan fails after boot-timeout, the console log is fetched, the node fails', async () => {
  const { zk, sim } = await setup({ launchRetries: 1 });
  sim.setFaults({ sshDown: true });
  const req = await waitDone(zk, await submit(zk, ['small']));
  assert.equal(req.state, 'failed');
  assert.ok(sim.calls('compute POST /v2.1/servers/{id}/action') >= 1, 'console-log: the console was read');
  await waitFor('server deleted', () => servers(sim).length === 0);
});

test('slow API answers and deletes that hang', async () => {
  const { zk, sim } = await setup();
  sim.addFaultRule({ service: 'compute', delayMs: 200 });
  const req = await waitDone(zk, await submit(zk, ['fip']));
  assert.equal(req.state, 'fulfilled');
  sim.setFaults({ rules: [], deleteHang: true });
  const [node] = await release(zk, req);
  await waitFor('delete requested', () => [...sim.state.servers.values()].some((s) => s.deletingSince !== null));
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await zk.getNode(node?.id ?? ''))?.state, 'deleting', 'the node waits for the server to go');
  sim.setFaults({ deleteHang: false });
  await waitFor('node gone', async () => (await zk.getNode(node?.id ?? '')) === null);
  assert.deepEqual(servers(sim), []);
});
