// Servers on the simulator: what Nova is asked for (metadata, AZ, key, networks, security
// groups, user data, config drive, boot from volume), addresses and floating IPs, batched status
// polling, deletion with floating IPs, quota from Nova limits and unmanaged usage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { leakedServers } from '@nodepool-ts/core/provider';
import { FIP_DESCRIPTION_PREFIX } from '../src/index.js';
import { DEFAULT_PROVIDER, fixture, netId, simApi, simToken, specFor, startManager } from './helpers.js';

test('a cloud-image node: tagged with Nodepool metadata, ACTIVE, floating IP attached, deleted with it', async () => {
  const f = await fixture();
  const m = await startManager(f);
  try {
    const label = f.provider.pools[0]?.labels.find((l) => l.name === 'small');
    assert.ok(label);
    const flavor = await m.findFlavor(label);
    assert.equal(flavor.name, 'm1.small'); // min-ram 2048: the smallest flavor with enough RAM
    const spec = specFor(f, 'small', '0000000042', {
      flavor, metadata: { ...specFor(f, 'small', '0000000042').metadata, team: 'infra' },
    });
    const created = await m.createServer(spec);
    assert.equal(created.status, 'BUILD');
    const server = await m.waitForServer(created.id, 5000);
    assert.equal(server.status, 'ACTIVE');
    assert.equal(server.az, 'nova');
    assert.ok(server.hostId);
    assert.match(server.privateIpv4 ?? '', /^10\.1\./);
    assert.match(server.publicIpv4 ?? '', /^172\.24\.4\./);
    assert.equal(server.interfaceIp, server.publicIpv4);
    assert.deepEqual(server.metadata, {
      team: 'infra', groups: 'sim-provider,cirros,small', nodepool_provider_name: 'sim-provider',
      nodepool_node_id: '0000000042', nodepool_image_name: 'cirros', nodepool_node_label: 'small',
    });
    const fips = [...f.sim.state.floatingIps.values()];
    assert.equal(fips.length, 1);
    assert.equal(fips[0]?.address, server.publicIpv4);
    assert.ok(fips[0]?.description.startsWith(`${FIP_DESCRIPTION_PREFIX}sim-provider `));

    const listed = await m.listServers();
    assert.deepEqual(listed.map((s) => s.id), [created.id]);
    assert.equal(listed[0]?.publicIpv4, server.publicIpv4);
    assert.equal((await m.getServer(created.id))?.name, 'small-sim-provider-0000000042');

    await m.deleteServer(created.id);
    assert.equal(f.sim.state.floatingIps.size, 0, 'the floating IP goes with the server');
    await m.waitForServerDeletion(created.id, 5000);
    assert.equal(await m.getServer(created.id), null);
    await assert.rejects(m.deleteServer(created.id), { name: 'NotFoundError' });
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('every create option reaches Nova: AZ, key, networks by name and id, security groups, user data, config drive, boot from volume', async () => {
  const f = await fixture({ sim: { azs: ['az1', 'az2'] } });
  const m = await startManager(f);
  try {
    const token = await simToken(f.sim);
    const kp = await simApi(f.sim, token, 'POST', '/compute/v2.1/os-keypairs', { keypair: { name: 'infra-key' } });
    assert.equal(kp.status, 200);
    const spec = specFor(f, 'small', '0000000007', {
      az: 'az2', keyName: 'infra-key', networks: ['private', netId(f.sim, 'private')].slice(1),
      securityGroups: ['default'], userdata: '#cloud-config\npackages: [git]\n', configDrive: true,
      bootFromVolume: true, volumeSize: 80,
    });
    const created = await m.createServer(spec);
    await m.waitForServer(created.id, 5000);
    const s = f.sim.state.servers.get(created.id);
    assert.ok(s);
    assert.equal(s.az, 'az2');
    assert.equal(s.keyName, 'infra-key');
    assert.deepEqual(s.securityGroups, ['default']);
    assert.equal(Buffer.from(s.userData ?? '', 'base64').toString(), '#cloud-config\npackages: [git]\n');
    assert.equal(s.configDrive, true);
    assert.deepEqual(s.volume && { size: s.volume.size, del: s.volume.deleteOnTermination }, { size: 80, del: true });
    assert.ok(s.imageId, 'the volume is made from the image');
    assert.deepEqual(await m.listAzs(), ['az1', 'az2']);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('auto-floating-ip false: no floating IP, the private address is the interface', async () => {
  const f = await fixture({ provider: DEFAULT_PROVIDER.replace('networks: [private]', 'networks: [private]\n        auto-floating-ip: false') });
  const m = await startManager(f);
  try {
    const created = await m.createServer(specFor(f, 'small', '0000000001'));
    const s = await m.waitForServer(created.id, 5000);
    assert.equal(s.publicIpv4, null);
    assert.equal(s.interfaceIp, s.privateIpv4);
    assert.equal(f.sim.state.floatingIps.size, 0);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('a server on an external network needs no floating IP', async () => {
  const f = await fixture({ provider: DEFAULT_PROVIDER.replace('networks: [private]', 'networks: [public]') });
  const m = await startManager(f);
  try {
    const created = await m.createServer(specFor(f, 'small', '0000000001'));
    const s = await m.waitForServer(created.id, 5000);
    assert.match(s.publicIpv4 ?? '', /^172\.24\.4\./);
    assert.equal(s.privateIpv4, null);
    assert.equal(f.sim.state.floatingIps.size, 0);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('many servers booting together are polled with one listing per cycle', async () => {
  const f = await fixture({ sim: { limits: { instances: 50, cores: 100, ram: 1e6 }, faults: { bootDelayMs: 150 } } });
  const m = await startManager(f, { pollIntervalMs: 50 });
  try {
    const created = await Promise.all(Array.from({ length: 12 }, (_, i) =>
      m.createServer(specFor(f, 'small', String(i).padStart(10, '0'), { networks: ['public'] }))));
    f.sim.resetCounters();
    const up = await Promise.all(created.map((c) => m.waitForServer(c.id, 5000)));
    assert.ok(up.every((s) => s.status === 'ACTIVE'));
    const lists = f.sim.calls('compute GET /v2.1/servers/detail');
    const gets = f.sim.calls('compute GET /v2.1/servers/{id}');
    assert.ok(lists >= 1 && lists <= 6, `listings: ${lists}`);
    assert.equal(gets, 0);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('quota: Nova limits (-1 = unlimited), cached until invalidated; unmanaged usage counts foreign and leaked servers', async () => {
  const f = await fixture({ sim: { limits: { instances: 20, cores: -1, ram: 40960 } } });
  const m = await startManager(f);
  try {
    assert.deepEqual(await m.getQuota(), { instances: 20, cores: Infinity, ram: 40960 });
    f.sim.setLimits({ instances: 5 });
    assert.equal((await m.getQuota()).instances, 20, 'cached');
    m.invalidateQuotaCache();
    assert.equal((await m.getQuota()).instances, 5);

    // ours (known node), ours (leaked: node gone), and someone else's in the same project
    const ours = await m.createServer(specFor(f, 'small', '0000000001', { networks: ['public'] }));
    const leaked = await m.createServer(specFor(f, 'small', '0000000002', { networks: ['public'] }));
    const token = await simToken(f.sim);
    const image = [...f.sim.state.images.values()][0]?.id;
    const foreign = await simApi(f.sim, token, 'POST', '/compute/v2.1/servers', {
      server: { name: 'manual', flavorRef: '4', imageRef: image, networks: [{ uuid: netId(f.sim, 'private') }] },
    });
    assert.equal(foreign.status, 202);
    // another project's servers are invisible and do not count
    const alice = await simToken(f.sim, 'alice');
    assert.equal((await simApi(f.sim, alice, 'POST', '/compute/v2.1/servers', {
      server: { name: 'alices', flavorRef: '5', imageRef: image, networks: [{ uuid: netId(f.sim, 'private') }] },
    })).status, 202);
    const usage = await m.unmanagedUsage(new Set(['0000000001']));
    assert.deepEqual(usage, { instances: 2, cores: 1 + 4, ram: 2048 + 8192 });
    const leaks = leakedServers(await m.listServers(), 'sim-provider', new Set(['0000000001']));
    assert.deepEqual(leaks.map((s) => s.id), [leaked.id]);
    assert.ok(ours.id);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('a server being deleted is listed as DELETED, so cleanup does not delete it twice', async () => {
  const f = await fixture({ sim: { faults: { deleteHang: true } } });
  const m = await startManager(f);
  try {
    const c = await m.createServer(specFor(f, 'small', '0000000001', { networks: ['public'] }));
    await m.waitForServer(c.id, 5000);
    await m.deleteServer(c.id);
    const [s] = await m.listServers();
    assert.equal(s?.status, 'DELETED');
    assert.deepEqual(leakedServers(await m.listServers(), 'sim-provider', new Set()), []);
    await assert.rejects(m.waitForServerDeletion(c.id, 300), { name: 'ProviderTimeoutError' });
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('console log of a server', async () => {
  const f = await fixture();
  const m = await startManager(f);
  try {
    const c = await m.createServer(specFor(f, 'small', '0000000001', { networks: ['public'] }));
    await m.waitForServer(c.id, 5000);
    assert.match(await m.getConsoleLog(c.id), /small-sim-provider-0000000001 login:/);
    await assert.rejects(m.getConsoleLog('00000000-0000-4000-8000-000000000000'), { name: 'NotFoundError' });
  } finally {
    await m.stop();
    await f.cleanup();
  }
});
