// The fake cloud's happy paths: booting, listing, deleting, flavors, AZs, console log.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NotFoundError, ProviderAbortedError, ProviderError, nodepoolServerMetadata } from '@nodepool-ts/core/provider';
import { FakeProviderManager, createFakeProvider, fakeAddresses } from '../src/index.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fakeConfig, label, spec, started, tempDir } from './helpers.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => { for (const c of cleanup.splice(0)) await c(); });

describe('fake cloud servers', () => {
  it('boots a server with a uuid-hex id, unique addresses, host id and metadata', async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    const created = await p.createServer(spec());
    assert.match(created.id, /^[0-9a-f]{32}$/);
    assert.equal(created.status, 'ACTIVE', 'bootDelay 0 boots at once');
    const s = await p.waitForServer(created.id, 1000);
    assert.equal(s.name, 'fake-label-fake-provider-0000000001');
    assert.ok(s.az === 'az1' || s.az === 'az2');
    assert.match(s.hostId ?? '', /^[0-9a-f]{56}$/);
    assert.match(s.publicIpv4 ?? '', /^198\.1[89]\.\d+\.\d+$/);
    assert.match(s.privateIpv4 ?? '', /^10\.\d+\.\d+\.\d+$/);
    assert.equal(s.publicIpv6, null, 'IPv6 only on an ipv6 network');
    assert.equal(s.interfaceIp, s.publicIpv4);
    assert.equal(s.flavorId, 'small');
    assert.equal(s.imageId, 'fake-image-id');
    assert.equal(s.metadata.nodepool_node_id, '0000000001');
    assert.equal(s.metadata.groups, 'fake-provider,fake-cloud-image,fake-label');

    const other = await p.createServer(spec({}, '0000000002'));
    const o = await p.waitForServer(other.id, 1000);
    assert.notEqual(o.id, s.id);
    assert.notEqual(o.publicIpv4, s.publicIpv4);
    assert.notEqual(o.privateIpv4, s.privateIpv4);
    assert.deepEqual((await p.listServers()).map((x) => x.id).sort(), [s.id, o.id].sort());
  });

  it('addresses stay unique over many servers', () => {
    const seen = new Set<string>();
    for (let n = 1; n <= 5000; n++) {
      const a = fakeAddresses(n);
      for (const ip of [a.privateIpv4, a.publicIpv4, a.publicIpv6]) {
        assert.ok(!seen.has(ip), `duplicate ${ip} at ${n}`);
        seen.add(ip);
      }
      assert.ok(!a.privateIpv4.endsWith('.0') && !a.privateIpv4.endsWith('.255'));
    }
  });

  it('records what the cloud was asked for', async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    const s = await p.createServer(spec({
      az: 'az2', keyName: 'mykey', networks: ['net1'], securityGroups: ['sg1'], userdata: '#cloud-config',
      bootFromVolume: true, volumeSize: 80, configDrive: true,
    }));
    assert.equal(s.az, 'az2');
    const rec = p.inspectServer(s.id);
    assert.equal(rec?.keyName, 'mykey');
    assert.deepEqual(rec?.networks, ['net1']);
    assert.deepEqual(rec?.securityGroups, ['sg1']);
    assert.equal(rec?.userdata, '#cloud-config');
    assert.equal(rec?.bootFromVolume, true);
    assert.equal(rec?.volumeSize, 80);
    assert.equal(rec?.configDrive, true);
  });

  it('a server on an ipv6 network gets a public IPv6 address', async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    const s = await p.createServer(spec({ networks: ['fake-public-network-name', 'fake-ipv6-network-name'] }));
    assert.match(s.publicIpv6 ?? '', /^2001:db8::[0-9a-f]+:[0-9a-f]+$/);
    assert.equal(s.interfaceIp, s.publicIpv4);
  });

  it('host keys are well-formed, stable per server and distinct between servers', async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    const a = await p.createServer(spec());
    const b = await p.createServer(spec());
    const ka = await p.hostKeys(a);
    assert.equal(ka.length, 1);
    const [type, b64] = (ka[0] ?? '').split(' ');
    assert.equal(type, 'ssh-ed25519');
    const blob = Buffer.from(b64 ?? '', 'base64');
    assert.equal(blob.readUInt32BE(0), 11);
    assert.equal(blob.subarray(4, 15).toString(), 'ssh-ed25519');
    assert.equal(blob.readUInt32BE(15), 32);
    assert.equal(blob.length, 51);
    assert.deepEqual(await p.hostKeys(a), ka);
    assert.notDeepEqual(await p.hostKeys(b), ka);
  });

  it('without auto-floating-ip the server has only its private address', async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    const s = await p.waitForServer((await p.createServer(spec({ autoFloatingIp: false }))).id, 1000);
    assert.equal(s.publicIpv4, null);
    assert.equal(s.publicIpv6, null);
    assert.equal(s.interfaceIp, s.privateIpv4);
  });

  it('AZ is null when the cloud has none; an unknown AZ is a fatal 400', async () => {
    const none = await started(fakeConfig({ azs: [] }), {}, cleanup);
    assert.equal((await none.createServer(spec())).az, null);
    assert.deepEqual(await none.listAzs(), []);
    const p = await started(fakeConfig(), {}, cleanup);
    assert.deepEqual(await p.listAzs(), ['az1', 'az2']);
    await assert.rejects(p.createServer(spec({ az: 'nope' })),
      (e: unknown) => e instanceof ProviderError && e.kind === 'fatal' && /nope/.test(e.message));
  });

  it('the AZ choice is deterministic for a seed', async () => {
    const azs = async (seed: number) => {
      const p = await started(fakeConfig({ azs: ['a', 'b', 'c', 'd'] }), { seed }, cleanup);
      const out: (string | null)[] = [];
      for (let i = 0; i < 12; i++) out.push((await p.createServer(spec())).az);
      return out;
    };
    const a = await azs(7);
    assert.deepEqual(await azs(7), a);
    assert.ok(new Set(a).size > 1, 'servers spread over AZs');
  });

  it('rejects unknown images and flavors like Nova (fatal 400)', async () => {
    const t = tempDir();
    cleanup.push(async () => t.remove());
    const shared = await started(fakeConfig(), { stateFile: join(t.dir, 'cloud.json') }, cleanup);
    await assert.rejects(shared.createServer(spec({ image: { kind: 'upload', externalId: 'nope' } })),
      (e: unknown) => e instanceof ProviderError && e.kind === 'fatal' && /image nope/.test(e.message));
    const p = await started(fakeConfig(), {}, cleanup);
    await assert.rejects(p.createServer(spec({ image: { kind: 'cloud', name: 'Nope', id: null } })),
      (e: unknown) => e instanceof ProviderError && e.kind === 'fatal');
    await assert.rejects(p.createServer(spec({ flavor: { id: 'zz', name: 'zz', vcpus: 1, ram: 1 } })),
      (e: unknown) => e instanceof ProviderError && e.kind === 'fatal' && /flavor zz/.test(e.message));
    assert.equal((await p.listServers()).length, 0);
  });

  it('in memory, boots an upload another process made (a separate nodepool-builder), not one it deleted', async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    const s = await p.createServer(spec({ image: { kind: 'upload', externalId: 'from-the-builder' } }));
    assert.equal(s.imageId, 'from-the-builder');
    const t = tempDir();
    cleanup.push(async () => t.remove());
    const file = join(t.dir, 'img.raw');
    writeFileSync(file, 'x');
    const img = await p.uploadImage({ name: 'mine', file, format: 'raw', metadata: {} });
    await p.deleteImage(img.id);
    await assert.rejects(p.createServer(spec({ image: { kind: 'upload', externalId: img.id } })),
      (e: unknown) => e instanceof ProviderError && e.kind === 'fatal' && /could not be found/.test(e.message));
  });

  it('boots from configured cloud images by name or id', async () => {
    const p = await started(fakeConfig({
      cloudImages: [
        { name: 'ubuntu', configDrive: null, imageId: null, imageName: 'Ubuntu 22.04', username: null,
          connectionType: 'ssh', connectionPort: 22, externalName: 'Ubuntu 22.04', pythonPath: null, shellType: null },
        { name: 'byid', configDrive: null, imageId: 'img-123', imageName: null, username: null,
          connectionType: 'ssh', connectionPort: 22, externalName: 'img-123', pythonPath: null, shellType: null },
      ],
    }), {}, cleanup);
    const a = await p.createServer(spec({ image: { kind: 'cloud', name: 'Ubuntu 22.04', id: null } }));
    const b = await p.createServer(spec({ image: { kind: 'cloud', name: 'byid', id: 'img-123' } }));
    assert.equal(b.imageId, 'img-123');
    assert.notEqual(a.imageId, b.imageId);
    assert.equal((await p.getCloudImage('Ubuntu 22.04'))?.status, 'active');
    assert.equal((await p.getCloudImage('img-123'))?.id, 'img-123');
    assert.equal((await p.getCloudImage('Fake Precise'))?.id, 'fake-image-id');
    assert.equal(await p.getCloudImage('missing'), null);
  });

  it('deletes: NotFoundError for a missing server, gone after the wait', async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    const s = await p.createServer(spec());
    await p.deleteServer(s.id);
    await p.waitForServerDeletion(s.id, 1000);
    assert.equal(await p.getServer(s.id), null);
    await assert.rejects(p.deleteServer(s.id), (e: unknown) => e instanceof NotFoundError
      && e.kind === 'notfound' && e.resource === 'server' && e.resourceId === s.id);
    await p.waitForServerDeletion('never-existed', 1000);
    await assert.rejects(p.waitForServer(s.id, 100), NotFoundError);
  });

  it('finds flavors and resources by the §3.5 rules', async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    assert.deepEqual((await p.listFlavors()).map((f) => f.id), ['small', 'medium', 'large', 'ssd']);
    assert.equal((await p.findFlavor(label({ minRam: 3000 }))).id, 'medium');
    assert.equal((await p.findFlavor(label({ minRam: 1000, flavorName: 'ssd' }))).id, 'ssd');
    assert.equal((await p.findFlavor(label({ minRam: null, flavorName: 'm1.large' }))).id, 'large');
    assert.equal((await p.findFlavor(label({ minRam: null, flavorName: 'ssd' }))).name, 'big-ssd');
    await assert.rejects(p.findFlavor(label({ minRam: null, flavorName: 'm1' })), NotFoundError);
    assert.deepEqual(await p.resourcesForLabel(label({ minRam: 4096 })), { cores: 2, instances: 1, ram: 4096 });
  });

  it("uses Nodepool's fake flavors when the config lists none", async () => {
    const p = await started(fakeConfig({ flavors: [] }), {}, cleanup);
    assert.deepEqual((await p.findFlavor(label({ minRam: 8192 }))).name, 'Fake Flavor');
    assert.deepEqual((await p.findFlavor(label({ minRam: null, flavorName: 'f2' }))).name, 'Unreal Flavor');
  });

  it('returns a console log', async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    const s = await p.createServer(spec());
    assert.match(await p.getConsoleLog(s.id), new RegExp(s.id));
    await assert.rejects(p.getConsoleLog('nope'), NotFoundError);
  });

  it('refuses calls before start and after stop', async () => {
    const p = createFakeProvider(fakeConfig(), { seed: 1 });
    assert.ok(p instanceof FakeProviderManager);
    assert.equal(p.kind, 'cloud');
    assert.equal(p.driver, 'fake');
    await assert.rejects(p.listServers(), (e: unknown) => e instanceof ProviderError && e.kind === 'fatal');
    await p.start();
    await p.stop();
    await p.stop();
    await assert.rejects(p.listServers(), ProviderAbortedError);
    await assert.rejects(p.start(), ProviderError);
  });

  it('metadata without nodepool keys is kept as given', async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    const md = { ...nodepoolServerMetadata({ provider: 'x', nodeId: '9', imageName: 'i', label: 'l' }), extra: 'y' };
    const s = await p.createServer(spec({ metadata: md }));
    assert.deepEqual((await p.getServer(s.id))?.metadata, md);
  });
});
