// Every failure the simulator can inject, seen through the driver: each must surface as the
// right ProviderError class/kind with a message naming the cloud, the call and Nova's reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  NotFoundError, ProviderError, ProviderTimeoutError, QuotaExceededError, ServerStatusError, isQuotaError,
} from '@nodepool-ts/core/provider';
import { createOpenStackProvider } from '../src/index.js';
import { fixture, specFor, startManager } from './helpers.js';

const PUBLIC = { networks: ['public'] };

test('a server that goes to ERROR: ServerStatusError with Nova\'s fault', async () => {
  const f = await fixture({ sim: { faults: { bootResult: 'ERROR' } } });
  const m = await startManager(f);
  try {
    const c = await m.createServer(specFor(f, 'small', '0000000001', PUBLIC));
    await assert.rejects(m.waitForServer(c.id, 5000), (err: unknown) => {
      assert.ok(err instanceof ServerStatusError);
      assert.equal(err.status, 'ERROR');
      assert.match(err.message, /No valid host was found/);
      return true;
    });
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('a server stuck in BUILD: ProviderTimeoutError after launch-timeout', async () => {
  const f = await fixture({ sim: { faults: { bootResult: 'BUILD' } } });
  const m = await startManager(f);
  try {
    const c = await m.createServer(specFor(f, 'small', '0000000001', PUBLIC));
    const t0 = Date.now();
    await assert.rejects(m.waitForServer(c.id, 300), ProviderTimeoutError);
    assert.ok(Date.now() - t0 < 2000);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('HTTP 500 on create: retryable, naming cloud and call; a one-shot fault clears', async () => {
  const f = await fixture();
  const m = await startManager(f);
  try {
    f.sim.addFaultRule({ service: 'compute', method: 'POST', path: '^/v2\\.1/servers$', status: 500, times: 1 });
    await assert.rejects(m.createServer(specFor(f, 'small', '0000000001', PUBLIC)), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.kind, 'retryable');
      assert.equal(err.operation, 'createServer');
      assert.match(err.message, /cloud sim: compute POST \/compute\/v2\.1\/servers failed with HTTP 500: Injected fault/);
      return true;
    });
    const c = await m.createServer(specFor(f, 'small', '0000000002', PUBLIC));
    assert.equal((await m.waitForServer(c.id, 5000)).status, 'ACTIVE');
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('quota exceeded: Nova\'s 403 becomes QuotaExceededError with the numbers', async () => {
  const f = await fixture({ sim: { limits: { instances: 1 } } });
  const m = await startManager(f);
  try {
    await m.createServer(specFor(f, 'small', '0000000001', PUBLIC));
    await assert.rejects(m.createServer(specFor(f, 'small', '0000000002', PUBLIC)), (err: unknown) => {
      assert.ok(err instanceof QuotaExceededError);
      assert.ok(isQuotaError(err));
      assert.deepEqual(err.detail, { resource: 'instances', requested: 1, used: 1, limit: 1 });
      assert.match(err.message, /Quota exceeded for instances/);
      return true;
    });
    f.sim.setLimits({ instances: 10 });
    f.sim.setFaults({ quotaExceeded: true });
    await assert.rejects(m.createServer(specFor(f, 'small', '0000000003', PUBLIC)), QuotaExceededError);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('slow answers within the API timeout are fine; slower ones and hung ones time out', async () => {
  const f = await fixture();
  const m = await startManager(f, { apiTimeoutMs: 400 });
  try {
    f.sim.addFaultRule({ service: 'compute', path: 'limits', delayMs: 150, times: 1 });
    assert.equal((await m.getQuota()).instances, 10);
    m.invalidateQuotaCache();
    f.sim.addFaultRule({ service: 'compute', path: 'limits', delayMs: 1500, times: 1 });
    await assert.rejects(m.getQuota(), (err: unknown) => {
      assert.ok(err instanceof ProviderTimeoutError);
      assert.equal(err.kind, 'retryable');
      assert.match(err.message, /compute GET \/limits \(cloud sim\)/);
      return true;
    });
    f.sim.addFaultRule({ service: 'network', method: 'GET', hang: true, times: 1 });
    await assert.rejects(m.listServers(), ProviderTimeoutError);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('deletes that hang: waitForServerDeletion times out, the server stays listed as DELETED', async () => {
  const f = await fixture({ sim: { faults: { deleteHang: true } } });
  const m = await startManager(f);
  try {
    const c = await m.createServer(specFor(f, 'small', '0000000001', PUBLIC));
    await m.waitForServer(c.id, 5000);
    await m.deleteServer(c.id);
    await assert.rejects(m.waitForServerDeletion(c.id, 200), ProviderTimeoutError);
    f.sim.setFaults({ deleteHang: false });
    await m.deleteServer(c.id); // Nova accepts a second delete; this time it completes
    await m.waitForServerDeletion(c.id, 5000);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('unknown flavor, network, cloud image and upload: errors name the provider and the thing', async () => {
  const f = await fixture();
  const m = await startManager(f);
  try {
    const label = f.provider.pools[0]?.labels[0];
    assert.ok(label);
    await assert.rejects(m.findFlavor({ ...label, minRam: 999999 }), (err: unknown) => {
      assert.ok(err instanceof NotFoundError);
      assert.equal(err.provider, 'sim-provider');
      assert.equal(err.resource, 'flavor');
      assert.match(err.message, /flavor min-ram 999999/);
      return true;
    });
    await assert.rejects(m.findFlavor({ ...label, minRam: null, flavorName: 'm9.huge' }), /flavor m9\.huge \(label small\) not found/);
    await assert.rejects(m.createServer(specFor(f, 'small', '0000000001', { networks: ['no-such-net'] })), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.provider, 'sim-provider');
      assert.equal(err.kind, 'fatal');
      assert.match(err.message, /network no-such-net not found in cloud sim/);
      return true;
    });
    await assert.rejects(m.createServer(specFor(f, 'small', '0000000002', { image: { kind: 'cloud', name: 'no-such-image', id: null } })),
      (err: unknown) => err instanceof NotFoundError && err.resource === 'image' && /no-such-image \(cloud sim\)/.test(err.message));
    await assert.rejects(m.createServer(specFor(f, 'small', '0000000003', {
      ...PUBLIC, image: { kind: 'upload', externalId: '6f1c1c0e-0000-4000-8000-000000000000' },
    })), /HTTP 400: Image 6f1c1c0e-0000-4000-8000-000000000000 could not be found/);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('validate() reports every bad name in the config, one line each', async () => {
  const f = await fixture({
    provider: `
    rate: 0.0001
    cloud-images:
      - name: ghost
        image-name: no-such-image
    pools:
      - name: main
        networks: [nowhere]
        labels:
          - name: small
            cloud-image: ghost
            flavor-name: m7.gigantic
            key-name: nobodys-key
`,
  });
  const m = createOpenStackProvider(f.provider, { validateOnStart: false });
  await m.start();
  try {
    const problems = await m.validate();
    assert.deepEqual(problems.map((p) => p.replace(/ \(.*$/, '')), [
      'pool main label small: flavor m7.gigantic',
      'pool main: network nowhere not found in cloud sim',
      'cloud-image ghost: image no-such-image not found in cloud sim',
      'key-name nobodys-key not found in cloud sim',
    ]);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});

test('a region the catalog does not have: a clear error', async () => {
  const f = await fixture();
  const provider = { ...f.provider, regionName: 'Atlantis' };
  const m = createOpenStackProvider(provider, { validateOnStart: false });
  await m.start();
  try {
    await assert.rejects(m.listFlavors(), /cloud sim: the service catalog has no compute endpoint in region Atlantis/);
  } finally {
    await m.stop();
    await f.cleanup();
  }
});
