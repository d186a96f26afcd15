// §3.10 cleanup of OpenStack leftovers: DOWN ports and unattached floating IPs — only ever this
// provider's own, never another tenant user's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createOpenStackProvider } from '../src/index.js';
import { CIRROS, DEFAULT_PROVIDER, fixture, netId, simApi, simToken, specFor, startManager } from './helpers.js';

test('DOWN ports of our deleted servers go after two sightings; other ports stay', async () => {
  const f = await fixture({ sim: { faults: { leakPortsOnDelete: true } } });
  const removed: [string, number][] = [];
  const m = await startManager(f, { downPortAgeMs: 0, onLeakedRemoved: (what, n) => removed.push([what, n]) });
  try {
    const ours = await m.createServer(specFor(f, 'small', '0000000001', { networks: ['public'] }));
    await m.waitForServer(ours.id, 5000);
    const token = await simToken(f.sim);
    const image = [...f.sim.state.images.values()].find((i) => i.name === CIRROS)?.id;
    const foreign = await simApi(f.sim, token, 'POST', '/compute/v2.1/servers', {
      server: { name: 'someone-elses', flavorRef: '1', imageRef: image, networks: [{ uuid: netId(f.sim, 'public') }] },
    });
    const foreignId = String((foreign.body.server as { id: string }).id);
    await new Promise((r) => setTimeout(r, 100));
    await m.deleteServer(ours.id);
    await simApi(f.sim, token, 'DELETE', `/compute/v2.1/servers/${foreignId}`);
    await m.waitForServerDeletion(ours.id, 5000);
    await new Promise((r) => setTimeout(r, 100));
    const down = [...f.sim.state.ports.values()].filter((p) => p.status === 'DOWN');
    assert.equal(down.length, 2, 'both deletes leaked their port');

    await m.cleanupLeakedResources(); // first sighting
    assert.equal(f.sim.state.ports.size, 2);
    await m.cleanupLeakedResources(); // seen again, old enough: ours goes
    assert.deepEqual([...f.sim.state.ports.values()].map((p) => p.deviceId), [foreignId]);
    assert.deepEqual(removed, [['ports', 1]]);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('clean-floating-ips: our unattached floating IPs are deleted, nobody else\'s', async () => {
  const f = await fixture();
  const removed: [string, number][] = [];
  const m = await startManager(f, { onLeakedRemoved: (what, n) => removed.push([what, n]) });
  try {
    const ours = await m.createServer(specFor(f, 'small', '0000000001'));
    const up = await m.waitForServer(ours.id, 5000);
    assert.ok(up.publicIpv4);
    const token = await simToken(f.sim);
    // the server vanishes behind our back (deleted by hand): its floating IP is left unattached
    await simApi(f.sim, token, 'DELETE', `/compute/v2.1/servers/${ours.id}`);
    const foreign = await simApi(f.sim, token, 'POST', '/network/v2.0/floatingips', {
      floatingip: { floating_network_id: netId(f.sim, 'public'), description: 'reserved by ops' },
    });
    assert.equal(foreign.status, 201);
    await m.waitForServerDeletion(ours.id, 5000);
    assert.equal(f.sim.state.floatingIps.size, 2);
    await m.cleanupLeakedResources();
    assert.deepEqual([...f.sim.state.floatingIps.values()].map((x) => x.description), ['reserved by ops']);
    assert.deepEqual(removed, [['floatingips', 1]]);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('without clean-floating-ips nothing is deleted', async () => {
  const f = await fixture({ provider: DEFAULT_PROVIDER.replace('clean-floating-ips: true', 'clean-floating-ips: false') });
  const m = await startManager(f);
  try {
    const ours = await m.createServer(specFor(f, 'small', '0000000001'));
    await m.waitForServer(ours.id, 5000);
    const token = await simToken(f.sim);
    await simApi(f.sim, token, 'DELETE', `/compute/v2.1/servers/${ours.id}`);
    await m.waitForServerDeletion(ours.id, 5000);
    await m.cleanupLeakedResources();
    assert.equal(f.sim.state.floatingIps.size, 1);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('port-cleanup-interval: how long our DOWN port waits before it goes; 0 leaves DOWN ports alone', async () => {
  const f = await fixture({ sim: { faults: { leakPortsOnDelete: true } } });
  const off = createOpenStackProvider({ ...f.provider, portCleanupInterval: 0 }, { validateOnStart: false, pollIntervalMs: 20 });
  const m = createOpenStackProvider({ ...f.provider, portCleanupInterval: 1 }, { validateOnStart: false, pollIntervalMs: 20 });
  await off.start();
  await m.start();
  try {
    const server = await m.createServer(specFor(f, 'small', '0000000001', { networks: ['public'] }));
    await m.waitForServer(server.id, 5000);
    await m.deleteServer(server.id);
    await m.waitForServerDeletion(server.id, 5000);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal([...f.sim.state.ports.values()].filter((p) => p.status === 'DOWN').length, 1);
    await m.cleanupLeakedResources(); // first sighting
    await m.cleanupLeakedResources(); // seen again, but not yet 1 s DOWN
    assert.equal(f.sim.state.ports.size, 1);
    await off.cleanupLeakedResources();
    await off.cleanupLeakedResources();
    assert.equal(f.sim.state.ports.size, 1, 'with 0 the port is never ours to delete');
    await new Promise((r) => setTimeout(r, 1100));
    await m.cleanupLeakedResources();
    assert.equal(f.sim.state.ports.size, 0);
  } finally {
    await off.stop();
    await m.stop();
    await f.cleanup();
  }
});
