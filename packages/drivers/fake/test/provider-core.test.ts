// The shared pieces of @nodepool-ts/core/provider every driver relies on: flavor choice (§3.5),
// server metadata keys, error classification and the API rate limiter.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  NotFoundError, ProviderAbortedError, ProviderError, QuotaExceededError, RateLimiter, errorKind,
  isManagedServer, isQuotaError, leakedServers, nodepoolServerMetadata, ownerNodeId, requireFlavor,
  selectFlavor,
} from '@nodepool-ts/core/provider';
import type { FlavorInfo } from '@nodepool-ts/core/provider';

const flavors: FlavorInfo[] = [
  { id: 'x', name: 'm1.xlarge', vcpus: 8, ram: 16384 },
  { id: 'f1', name: 'Fake Flavor', vcpus: 4, ram: 8192 },
  { id: 'f2', name: 'Unreal Flavor', vcpus: 4, ram: 8192 },
  { id: 's', name: 'm1.small', vcpus: 1, ram: 2048 },
  { id: 'm', name: 'm1.medium', vcpus: 2, ram: 4096 },
];

describe('selectFlavor', () => {
  it('min-ram picks the smallest flavor with enough RAM', () => {
    assert.equal(selectFlavor(flavors, { minRam: 3000, flavorName: null })?.id, 'm');
    assert.equal(selectFlavor(flavors, { minRam: 2048, flavorName: null })?.id, 's');
    assert.equal(selectFlavor(flavors, { minRam: 1, flavorName: null })?.id, 's');
  });

  it('min-ram with flavor-name requires the name to CONTAIN flavor-name', () => {
    assert.equal(selectFlavor(flavors, { minRam: 1024, flavorName: 'Unreal' })?.id, 'f2');
    assert.equal(selectFlavor(flavors, { minRam: 1024, flavorName: 'm1.' })?.id, 's');
    assert.equal(selectFlavor(flavors, { minRam: 10000, flavorName: 'm1' })?.id, 'x');
    assert.equal(selectFlavor(flavors, { minRam: 20000, flavorName: null }), null);
  });

  it('equal RAM keeps the cloud order (stable sort)', () => {
    assert.equal(selectFlavor(flavors, { minRam: 8000, flavorName: null })?.id, 'f1');
    assert.equal(selectFlavor([...flavors].reverse(), { minRam: 8000, flavorName: null })?.id, 'f2');
  });

  it('without min-ram flavor-name must equal a name or an id', () => {
    assert.equal(selectFlavor(flavors, { minRam: null, flavorName: 'Fake Flavor' })?.id, 'f1');
    assert.equal(selectFlavor(flavors, { minRam: null, flavorName: 'm' })?.name, 'm1.medium');
    assert.equal(selectFlavor(flavors, { minRam: null, flavorName: 'Fake' }), null, 'no substring match');
    assert.equal(selectFlavor(flavors, { minRam: null, flavorName: null }), null);
    assert.equal(selectFlavor(flavors, { minRam: 0, flavorName: 'f2' })?.id, 'f2', 'min-ram 0 means unset');
  });

  it('requireFlavor throws a NotFoundError naming the label', () => {
    assert.throws(() => requireFlavor('p', flavors, { name: 'big', minRam: 99999, flavorName: null }),
      (e: unknown) => e instanceof NotFoundError && e.kind === 'notfound' && e.resource === 'flavor'
        && /big/.test(e.message) && e.provider === 'p');
  });
});

describe('server metadata', () => {
  it("produces Nodepool's keys; Nodepool's win over instance-properties", () => {
    const md = nodepoolServerMetadata({
      provider: 'fake-provider', nodeId: '0000000007', imageName: 'fake-image', label: 'fake-label',
      instanceProperties: { prop1: 'foo', nodepool_node_id: 'spoofed' },
    });
    assert.deepEqual(md, {
      prop1: 'foo',
      groups: 'fake-provider,fake-image,fake-label',
      nodepool_provider_name: 'fake-provider',
      nodepool_node_id: '0000000007',
      nodepool_image_name: 'fake-image',
      nodepool_node_label: 'fake-label',
    });
  });

  it('ownership and leak detection follow §3.6/§3.10', () => {
    const mk = (id: string, md: Record<string, string>, status = 'ACTIVE') => ({ id, status, metadata: md });
    const servers = [
      mk('a', { nodepool_provider_name: 'p', nodepool_node_id: '1' }),
      mk('b', { nodepool_provider_name: 'p', nodepool_node_id: '2' }),
      mk('c', { nodepool_provider_name: 'other', nodepool_node_id: '3' }),
      mk('d', {}),
      mk('e', { nodepool_provider_name: 'p', nodepool_node_id: '4' }, 'DELETED'),
      mk('f', { nodepool_provider_name: 'p' }),
    ];
    const known = new Set(['1']);
    assert.equal(ownerNodeId(servers[0]!, 'p'), '1');
    assert.equal(ownerNodeId(servers[2]!, 'p'), null);
    assert.equal(isManagedServer(servers[0]!, 'p', known), true);
    assert.equal(isManagedServer(servers[1]!, 'p', known), false);
    assert.deepEqual(leakedServers(servers, 'p', known).map((s) => s.id), ['b']);
  });
});

describe('provider errors', () => {
  it('carry code, kind and provider', () => {
    const e = new ProviderError('p', 'retryable', 'boom', { operation: 'listServers' });
    assert.equal(e.code, 'EPROVIDER');
    assert.equal(e.kind, 'retryable');
    assert.equal(e.provider, 'p');
    assert.equal(e.operation, 'listServers');
    assert.ok(e instanceof Error);
    assert.equal(errorKind(e), 'retryable');
    assert.equal(errorKind(new Error('x')), 'fatal');
  });

  it('quota errors always say "quota exceeded" and are recognised by text too', () => {
    const q = new QuotaExceededError('p', 'no room', { resource: 'cores', requested: 4, used: 8, limit: 10 });
    assert.match(q.message, /quota exceeded/);
    assert.equal(q.kind, 'quota');
    assert.equal(q.detail?.limit, 10);
    assert.ok(q instanceof ProviderError);
    assert.equal(isQuotaError(q), true);
    assert.equal(isQuotaError(new Error('Quota exceeded for instances: Requested 1')), true);
    assert.equal(isQuotaError(new Error('boom')), false);
  });
});

describe('RateLimiter', () => {
  it('spaces call starts by `rate` seconds across all callers', async () => {
    const rl = new RateLimiter(0.04, 'p');
    const starts: number[] = [];
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 5 }, () => rl.run(async () => {
      starts.push(Date.now() - t0);
      await new Promise((r) => setTimeout(r, 60)); // a slow call does not delay the next start
    })));
    starts.sort((a, b) => a - b);
    // The n-th call never starts before n intervals have passed (a late timer may bunch two
    // starts together afterwards, but never lets the rate be exceeded overall).
    for (let i = 0; i < starts.length; i++) {
      assert.ok((starts[i] ?? 0) >= i * 40 - 2, `call ${i} started at ${starts[i]} ms, before ${i * 40} ms`);
    }
    rl.close();
  });

  it('rate 0 does not delay', async () => {
    const rl = new RateLimiter(0);
    const t0 = Date.now();
    for (let i = 0; i < 100; i++) await rl.run(() => i);
    assert.ok(Date.now() - t0 < 50);
    rl.close();
  });

  it('close() rejects waiting calls and later calls; abort rejects one call', async () => {
    const rl = new RateLimiter(10, 'p');
    await rl.run(() => 1); // takes the first slot; the next waits 10 s
    const ac = new AbortController();
    const aborted = rl.run(() => 2, { operation: 'getServer', signal: ac.signal });
    const waiting = rl.run(() => 3, { operation: 'listServers' });
    ac.abort();
    await assert.rejects(aborted, (e: unknown) => e instanceof ProviderAbortedError && /getServer/.test(e.message));
    rl.close();
    await assert.rejects(waiting, ProviderAbortedError);
    await assert.rejects(rl.run(() => 4), ProviderAbortedError);
  });

  it('passes the result and errors of the call through', async () => {
    const rl = new RateLimiter(0.001);
    assert.equal(await rl.run(async () => 'ok'), 'ok');
    await assert.rejects(rl.run(() => { throw new Error('inner'); }), /inner/);
    rl.close();
  });
});
