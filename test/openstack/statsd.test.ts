// The launcher's OpenStack statsd figures on a real UDP socket, against the simulator: every API
// call under openstacksdk's keys (`nodepool.task.<provider>.<service>.<METHOD>.<name>.<status>`
// timer + counter, `.attempted`, `.over_1000`), and `nodepool.provider.<p>.downPorts` once a
// cleanup removed the DOWN port a deleted server left behind. Prometheus reports the same counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { Launcher } from '@nodepool-ts/launcher';
import { connectZk, testEnv, waitFor } from '../helpers/harness.js';
import { simApi, simToken, netId } from '../../packages/drivers/openstack/test/helpers.js';
import { freePort, openstackConfig, release, startSim, submit, waitDone } from './helpers.js';

process.env.NODEPOOL_OPENSTACK_POLL_INTERVAL = '0.05';

/** A statsd server: every line received, parsed. */
async function statsdListener(): Promise<{
  port: number; lines: string[]; close(): void;
  sum(key: string, type: 'c' | 'ms'): number; values(key: string, type: 'c' | 'ms'): number[];
}> {
  const sock = createSocket('udp4');
  const lines: string[] = [];
  sock.on('message', (msg) => { lines.push(...msg.toString('utf8').split('\n').filter((l) => l !== '')); });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
  const values = (key: string, type: 'c' | 'ms'): number[] => lines.flatMap((l) => {
    const m = /^(.+):([^:|]+)\|(c|ms|g)$/.exec(l);
    return m && m[1] === key && m[3] === type ? [Number(m[2])] : [];
  });
  return {
    port: sock.address().port, lines, close: () => sock.close(),
    values, sum: (key, type) => values(key, type).reduce((a, b) => a + b, 0),
  };
}

function promValue(text: string, series: string): number | null {
  for (const line of text.split('\n')) if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  return null;
}

test('nodepool.task.* per OpenStack API call, downPorts and leaked.{ports,instances} reach statsd', async () => {
  const statsd = await statsdListener();
  const saved = { host: process.env.STATSD_HOST, port: process.env.STATSD_PORT, age: process.env.NODEPOOL_OPENSTACK_DOWN_PORT_AGE };
  process.env.STATSD_HOST = '127.0.0.1';
  process.env.STATSD_PORT = String(statsd.port);
  // a DOWN port goes at its second sighting, however close the two cleanups are
  process.env.NODEPOOL_OPENSTACK_DOWN_PORT_AGE = '0';
  const sshPort = await freePort();
  const sim = await startSim({ sshPort, faults: { leakPortsOnDelete: true } });
  // the first server create is refused (500), the retry answered after more than a second
  sim.addFaultRule({ service: 'compute', method: 'POST', path: '^/v2\\.1/servers$', status: 500, times: 1 });
  sim.addFaultRule({ service: 'compute', method: 'POST', path: '^/v2\\.1/servers$', delayMs: 1100, times: 1 });
  const env = testEnv();
  const config = env.write('nodepool.yaml', openstackConfig(env, sim, sshPort));
  process.env.OS_CLIENT_CONFIG_FILE = join(env.dir, 'clouds.yaml');
  process.env.NODEPOOL_STATE_DIR = env.dir;
  const zk = await connectZk(env);
  const launcher = new Launcher({ configFile: config, hostname: 'os-statsd', watchIntervalMs: 0, cleanupIntervalMs: 60_000 });
  try {
    await launcher.start();
    const req = await waitDone(zk, await submit(zk, ['small']));
    assert.equal(req.state, 'fulfilled');
    const key = 'nodepool.task.sim.compute.POST.servers';
    await waitFor('server create stats', () => statsd.sum(`${key}.attempted`, 'c') === 2, 10_000, 50);
    assert.equal(sim.counters.get('compute POST /v2.1/servers'), 2, 'one call per attempted count');
    assert.equal(statsd.sum(`${key}.500`, 'c'), 1);
    assert.equal(statsd.values(`${key}.500`, 'ms').length, 1);
    assert.equal(statsd.sum(`${key}.202`, 'c'), 1);
    const [createMs] = statsd.values(`${key}.202`, 'ms');
    assert.ok(createMs !== undefined && createMs >= 1100, `the 202 timer holds the delayed answer's time (${createMs} ms)`);
    assert.equal(statsd.sum(`${key}.over_1000`, 'c'), 1);
    assert.equal(statsd.sum(`${key}.failed`, 'c'), 0);
    // Keystone, the network lookup and the polls of the booting server (one by one, or a
    // listing), under the status each answer had
    await waitFor('token, network and poll stats', () => statsd.sum('nodepool.task.sim.identity.POST.tokens.201', 'c') >= 1
      && statsd.sum('nodepool.task.sim.network.GET.networks.200', 'c') >= 1
      && statsd.sum('nodepool.task.sim.compute.GET.server.200', 'c') + statsd.sum('nodepool.task.sim.compute.GET.servers_detail.200', 'c') >= 1,
    10_000, 50);
    assert.ok(!statsd.lines.some((l) => l.startsWith('nodepool.task.') && !l.startsWith('nodepool.task.sim.')));

    // the node is used and deleted; Nova leaves its port DOWN, the launcher's cleanup removes it
    const node = await zk.getNode(req.nodes[0] ?? '');
    await release(zk, req);
    await waitFor('server gone', () => sim.state.servers.size === 0, 20_000);
    const leaked = [...sim.state.ports.values()].filter((p) => p.deviceId === node?.external_id);
    assert.equal(leaked.length, 1);
    assert.equal(leaked[0]?.status, 'DOWN');
    const deletes = sim.counters.get('compute DELETE /v2.1/servers/{id}') ?? 0;
    assert.ok(deletes >= 1);
    await waitFor('server delete stats', () => statsd.sum('nodepool.task.sim.compute.DELETE.server.204', 'c') === deletes, 10_000, 50);
    await waitFor('DOWN port removed', async () => {
      await launcher.runCleanup();
      return !sim.state.ports.has(leaked[0]?.id ?? '');
    }, 20_000, 100);
    await waitFor('downPorts counted', () => statsd.sum('nodepool.provider.sim.downPorts', 'c') === 1, 10_000, 50);
    assert.equal(statsd.sum('nodepool.task.sim.network.DELETE.port.204', 'c'), 1);
    assert.ok(statsd.sum('nodepool.task.sim.network.GET.ports.200', 'c') >= 2, 'two sightings of the DOWN port');

    const prom = (await launcher.metrics?.prometheus())?.body ?? '';
    assert.equal(promValue(prom, 'nodepool_task_total{provider="sim",service="compute",method="POST",name="servers",status="202"}'), 1);
    assert.equal(promValue(prom, 'nodepool_task_total{provider="sim",service="compute",method="POST",name="servers",status="500"}'), 1);
    assert.equal(promValue(prom, 'nodepool_task_duration_seconds_count{provider="sim",service="compute",method="POST",name="servers"}'), 2);
    assert.equal(promValue(prom, 'nodepool_provider_down_ports_total{provider="sim"}'), 1);
    // later Nodepool's name for the same count
    assert.equal(statsd.sum('nodepool.provider.sim.leaked.ports', 'c'), 1);
    assert.equal(promValue(prom, 'nodepool_provider_leaked_total{provider="sim",resource="ports"}'), 1);

    // a server of ours whose node is gone is a leaked instance
    const token = await simToken(sim);
    const image = [...sim.state.images.values()][0]?.id;
    const made = await simApi(sim, token, 'POST', '/compute/v2.1/servers', { server: {
      name: 'leaked', flavorRef: '1', imageRef: image, networks: [{ uuid: netId(sim, 'private') }],
      metadata: { nodepool_provider_name: 'sim', nodepool_node_id: '0000009999' },
    } });
    assert.equal(made.status, 202);
    const leakedServer = String((made.body.server as { id: string }).id);
    await launcher.runCleanup();
    await waitFor('leaked instance counted', () => statsd.sum('nodepool.provider.sim.leaked.instances', 'c') === 1, 10_000, 50);
    await waitFor('leaked instance deleted', () => !sim.state.servers.has(leakedServer), 20_000, 100);
    const prom2 = (await launcher.metrics?.prometheus())?.body ?? '';
    assert.equal(promValue(prom2, 'nodepool_provider_leaked_total{provider="sim",resource="instances"}'), 1);
  } finally {
    await launcher.stop();
    await zk.close();
    await sim.stop();
    env.cleanup();
    statsd.close();
    for (const [k, v] of [['STATSD_HOST', saved.host], ['STATSD_PORT', saved.port], ['NODEPOOL_OPENSTACK_DOWN_PORT_AGE', saved.age]] as const) {
      if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  }
});
