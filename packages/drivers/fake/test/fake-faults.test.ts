// Every injectable failure of the fake cloud, and that a seed replays them identically.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  NotFoundError, ProviderAbortedError, ProviderError, ProviderTimeoutError, QuotaExceededError,
  ServerStatusError, isQuotaError,
} from '@nodepool-ts/core/provider';
import type { FakeProviderManager } from '../src/index.js';
import { fakeConfig, spec, started } from './helpers.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => { for (const c of cleanup.splice(0)) await c(); });

async function outcomes(p: FakeProviderManager, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    try {
      await p.createServer(spec({}, String(i)));
      out.push('ok');
    } catch (e) {
      out.push(e instanceof ProviderError ? e.kind : 'other');
    }
  }
  return out;
}

describe('fake cloud faults', () => {
  it('bootDelay keeps the server in BUILD, without addresses, until it elapses', async () => {
    const p = await started(fakeConfig({ faults: { bootDelay: 150 } }), {}, cleanup);
    const t0 = Date.now();
    const s = await p.createServer(spec());
    assert.equal(s.status, 'BUILD');
    assert.equal(s.interfaceIp, null);
    assert.equal((await p.getServer(s.id))?.status, 'BUILD');
    const active = await p.waitForServer(s.id, 5000);
    const took = Date.now() - t0;
    assert.equal(active.status, 'ACTIVE');
    assert.ok(active.interfaceIp);
    assert.ok(took >= 145 && took < 1000, `waited ${took} ms`);
  });

  it('waitForServer times out with a retryable ProviderTimeoutError', async () => {
    const p = await started(fakeConfig({ faults: { bootDelay: 10_000 } }), {}, cleanup);
    const s = await p.createServer(spec());
    const t0 = Date.now();
    await assert.rejects(p.waitForServer(s.id, 80),
      (e: unknown) => e instanceof ProviderTimeoutError && e.kind === 'retryable' && e.timeoutMs === 80);
    assert.ok(Date.now() - t0 < 1000);
  });

  it('waitForServer stops on abort and on provider stop', async () => {
    const p = await started(fakeConfig({ faults: { bootDelay: 10_000 } }), {}, cleanup);
    const s = await p.createServer(spec());
    const ac = new AbortController();
    const w = p.waitForServer(s.id, 60_000, ac.signal);
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(w, ProviderAbortedError);
    const w2 = p.waitForServer(s.id, 60_000);
    setTimeout(() => { void p.stop(); }, 20);
    await assert.rejects(w2, ProviderAbortedError);
  });

  it('createFailureRate 1 fails every create with a retryable error and leaves no server', async () => {
    const p = await started(fakeConfig({ faults: { createFailureRate: 1 } }), {}, cleanup);
    await assert.rejects(p.createServer(spec()),
      (e: unknown) => e instanceof ProviderError && e.kind === 'retryable' && e.operation === 'createServer');
    assert.equal((await p.listServers()).length, 0);
    p.setFaults({ createFailureRate: 0 });
    await p.createServer(spec());
  });

  it('fractional rates are deterministic for a seed and roughly proportional', async () => {
    const cfg = fakeConfig({ faults: { createFailureRate: 0.3 } });
    const a = await outcomes(await started(cfg, { seed: 1234 }, cleanup), 200);
    const b = await outcomes(await started(cfg, { seed: 1234 }, cleanup), 200);
    const c = await outcomes(await started(cfg, { seed: 99 }, cleanup), 200);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    const failed = a.filter((x) => x === 'retryable').length;
    assert.ok(failed > 30 && failed < 90, `${failed}/200 failed`);
  });

  it('NODEPOOL_FAKE_SEED seeds the PRNG when no seed option is given', async () => {
    const old = process.env.NODEPOOL_FAKE_SEED;
    try {
      process.env.NODEPOOL_FAKE_SEED = 'ci-run-7';
      const cfg = fakeConfig({ faults: { createFailureRate: 0.5 } });
      const p1 = await started(cfg, { seed: undefined }, cleanup);
      const p2 = await started(cfg, { seed: undefined }, cleanup);
      assert.equal(p1.seed, p2.seed);
      assert.deepEqual(await outcomes(p1, 50), await outcomes(p2, 50));
    } finally {
      if (old === undefined) delete process.env.NODEPOOL_FAKE_SEED; else process.env.NODEPOOL_FAKE_SEED = old;
    }
  });

  it("SHOULD_FAIL metadata fails the create, as Nodepool's fake does", async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    const s = spec();
    await assert.rejects(p.createServer({ ...s, metadata: { ...s.metadata, SHOULD_FAIL: 'True' } }), ProviderError);
  });

  it('errorRate sends the server to ERROR; waitForServer raises ServerStatusError', async () => {
    const p = await started(fakeConfig({ faults: { errorRate: 1, bootDelay: 30 } }), {}, cleanup);
    const s = await p.createServer(spec());
    assert.equal(s.status, 'BUILD');
    await assert.rejects(p.waitForServer(s.id, 5000), (e: unknown) => e instanceof ServerStatusError
      && e.kind === 'fatal' && e.status === 'ERROR' && e.serverId === s.id && /No valid host/.test(e.message));
    const err = await p.getServer(s.id);
    assert.equal(err?.status, 'ERROR');
    assert.equal(err?.interfaceIp, null);
    assert.match(err?.fault ?? '', /No valid host/);
    // an ERROR server still exists (and uses quota) until deleted
    await p.deleteServer(s.id);
    await p.waitForServerDeletion(s.id, 1000);
  });

  it('apiErrorRate 1 fails every cloud call with a retryable HTTP 500', async () => {
    const p = await started(fakeConfig(), {}, cleanup);
    const s = await p.createServer(spec());
    p.setFaults({ apiErrorRate: 1 });
    p.invalidateQuotaCache();
    const calls: [string, Promise<unknown>][] = [
      ['createServer', p.createServer(spec())],
      ['getServer', p.getServer(s.id)],
      ['waitForServer', p.waitForServer(s.id, 100)],
      ['listServers', p.listServers()],
      ['deleteServer', p.deleteServer(s.id)],
      ['waitForServerDeletion', p.waitForServerDeletion(s.id, 100)],
      ['getConsoleLog', p.getConsoleLog(s.id)],
      ['getQuota', p.getQuota()],
      ['unmanagedUsage', p.unmanagedUsage(new Set())],
      ['listImages', p.listImages()],
      ['deleteImage', p.deleteImage('fake-image-id')],
      ['getCloudImage', p.getCloudImage('Fake Precise')],
      ['uploadImage', p.uploadImage({ name: 'x', file: '/etc/hostname', format: 'raw', metadata: {} })],
    ];
    for (const [op, call] of calls) {
      await assert.rejects(call, (e: unknown) => e instanceof ProviderError && e.kind === 'retryable'
        && e.operation === op && /HTTP 500/.test(e.message), op);
    }
    // cached, static data is not an API call
    assert.equal((await p.listAzs()).length, 2);
    assert.equal((await p.listFlavors()).length, 4);
    p.setFaults({ apiErrorRate: 0 });
    assert.equal((await p.getServer(s.id))?.status, 'ACTIVE', 'nothing changed by failed calls');
  });

  it('quotaExceeded makes createServer throw QuotaExceededError', async () => {
    const p = await started(fakeConfig({ faults: { quotaExceeded: true } }), {}, cleanup);
    await assert.rejects(p.createServer(spec()), (e: unknown) => e instanceof QuotaExceededError
      && e.kind === 'quota' && /quota exceeded/.test(e.message) && isQuotaError(e));
    assert.equal((await p.listServers()).length, 0);
  });

  it('the tenant quota is enforced on create, in every dimension, until servers are gone', async () => {
    const p = await started(fakeConfig({ quota: { instances: 2, cores: Infinity, ram: Infinity } }), {}, cleanup);
    const a = await p.createServer(spec());
    await p.createServer(spec());
    await assert.rejects(p.createServer(spec()), (e: unknown) => e instanceof QuotaExceededError
      && e.detail?.resource === 'instances' && e.detail.limit === 2 && e.detail.used === 2 && e.detail.requested === 1);
    p.setFaults({ deleteDelay: 60 });
    await p.deleteServer(a.id);
    await assert.rejects(p.createServer(spec()), QuotaExceededError, 'a deleting server still counts');
    await p.waitForServerDeletion(a.id, 1000);
    await p.createServer(spec());

    const c = await started(fakeConfig({ quota: { instances: Infinity, cores: 3, ram: Infinity } }), {}, cleanup);
    await c.createServer(spec({ flavor: { id: 'medium', name: 'm1.medium', vcpus: 2, ram: 4096 } }));
    await assert.rejects(c.createServer(spec({ flavor: { id: 'medium', name: 'm1.medium', vcpus: 2, ram: 4096 } })),
      (e: unknown) => e instanceof QuotaExceededError && e.detail?.resource === 'cores');
    await c.createServer(spec()); // 1 core still fits

    const r = await started(fakeConfig({ quota: { instances: Infinity, cores: Infinity, ram: 5000 } }), {}, cleanup);
    await r.createServer(spec());
    await assert.rejects(r.createServer(spec({ flavor: { id: 'medium', name: 'm1.medium', vcpus: 2, ram: 4096 } })),
      (e: unknown) => e instanceof QuotaExceededError && e.detail?.resource === 'ram');
  });

  it('deleteFailureRate fails deletes (retryable) and leaves the server', async () => {
    const p = await started(fakeConfig({ faults: { deleteFailureRate: 1 } }), {}, cleanup);
    const s = await p.createServer(spec());
    await assert.rejects(p.deleteServer(s.id),
      (e: unknown) => e instanceof ProviderError && e.kind === 'retryable' && e.operation === 'deleteServer');
    assert.equal((await p.getServer(s.id))?.status, 'ACTIVE');
    await assert.rejects(p.deleteServer('missing'), NotFoundError, 'missing wins over the failure draw');
    p.setFaults({ deleteFailureRate: 0 });
    await p.deleteServer(s.id);
  });

  it('deleteDelay: the server shows DELETED until the delay elapses', async () => {
    const p = await started(fakeConfig({ faults: { deleteDelay: 120 } }), {}, cleanup);
    const s = await p.createServer(spec());
    const t0 = Date.now();
    await p.deleteServer(s.id);
    assert.ok(Date.now() - t0 < 50, 'the delete call itself returns at once');
    assert.equal((await p.getServer(s.id))?.status, 'DELETED');
    assert.equal((await p.listServers()).find((x) => x.id === s.id)?.status, 'DELETED');
    await p.deleteServer(s.id); // deleting again is accepted and does not restart the clock
    await assert.rejects(p.waitForServerDeletion(s.id, 30), ProviderTimeoutError);
    await p.waitForServerDeletion(s.id, 5000);
    const took = Date.now() - t0;
    assert.ok(took >= 115 && took < 1000, `deleted after ${took} ms`);
    assert.equal(await p.getServer(s.id), null);
  });

  it('waitForServer on a server being deleted fails with its status', async () => {
    const p = await started(fakeConfig({ faults: { bootDelay: 5000, deleteDelay: 5000 } }), {}, cleanup);
    const s = await p.createServer(spec());
    await p.deleteServer(s.id);
    await assert.rejects(p.waitForServer(s.id, 1000),
      (e: unknown) => e instanceof ServerStatusError && e.status === 'DELETED');
  });

  it('rate spaces the API calls of one provider', async () => {
    const p = await started(fakeConfig({ rate: 0.03 }), {}, cleanup);
    const t0 = Date.now();
    await Promise.all([p.listServers(), p.listServers(), p.listServers(), p.listServers()]);
    const took = Date.now() - t0;
    assert.ok(took >= 85 && took < 1000, `4 calls took ${took} ms`);
  });
});
