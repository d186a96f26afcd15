import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newNode, newNodeRequest } from '@nodepool-ts/core/model';
import { compareRequests, neededLabels, planRequest, type PlanInput, type PoolView } from '../src/decide.js';

const small = { cores: 4, instances: 1, ram: 8192 };

function pool(over: Partial<PoolView> = {}): PoolView {
  return {
    provider: 'fake-provider', pool: 'main', maxServers: 10, maxCores: Infinity, maxRam: Infinity,
    labels: new Map([['a', small], ['b', small]]), canLaunch: true, ignoreProviderQuota: false, ...over,
  };
}

function input(over: Partial<PlanInput> = {}): PlanInput {
  return {
    request: newNodeRequest({ id: '200-0000000001', node_types: ['a'] }),
    pool: pool(),
    quota: {
      provider: { cores: Infinity, instances: Infinity, ram: Infinity },
      providerUsed: { cores: 0, instances: 0, ram: 0 },
      poolUsed: { cores: 0, instances: 0, ram: 0 },
    },
    unavailableLabels: new Set(),
    readyNodes: [],
    ...over,
  };
}

function readyNode(id: string, label: string) {
  return newNode({ id, state: 'ready', type: [label], provider: 'fake-provider', pool: 'main' });
}

test('declines when the pool is disabled by max-servers', () => {
  const plan = planRequest(input({ pool: pool({ maxServers: 0 }) }));
  assert.deepEqual(plan, { kind: 'decline', reason: 'pool is disabled by max_servers' });
});

test('declines a label the pool does not offer', () => {
  const plan = planRequest(input({ request: newNodeRequest({ node_types: ['nope'] }) }));
  assert.equal(plan.kind, 'decline');
});

test('declines when the image of a label is unavailable', () => {
  const plan = planRequest(input({ unavailableLabels: new Set(['a']) }));
  assert.equal(plan.kind, 'decline');
});

test('declines a request that cannot fit even an empty provider', () => {
  const plan = planRequest(input({
    request: newNodeRequest({ node_types: ['a', 'a', 'a'] }),
    quota: { provider: { cores: 8, instances: 10, ram: Infinity }, providerUsed: { cores: 0, instances: 0, ram: 0 }, poolUsed: { cores: 0, instances: 0, ram: 0 } },
  }));
  assert.deepEqual(plan, { kind: 'decline', reason: 'it would exceed quota' });
  const ignored = planRequest(input({
    request: newNodeRequest({ node_types: ['a', 'a'] }),
    pool: pool({ maxServers: 1, ignoreProviderQuota: true }),
  }));
  assert.deepEqual(ignored, { kind: 'decline', reason: 'it would exceed pool limits' });
});

test('reuses ready nodes first, launches the rest, in node_types order', () => {
  const plan = planRequest(input({
    request: newNodeRequest({ node_types: ['a', 'b', 'a'] }),
    readyNodes: [readyNode('0000000001', 'a')],
  }));
  assert.equal(plan.kind, 'proceed');
  if (plan.kind !== 'proceed') return;
  assert.deepEqual(plan.steps.map((s) => [s.label, s.action]), [['a', 'reuse'], ['b', 'launch'], ['a', 'launch']]);
});

test('reuse false (min-ready) never reuses', () => {
  const plan = planRequest(input({
    request: newNodeRequest({ node_types: ['a'], reuse: false }),
    readyNodes: [readyNode('0000000001', 'a')],
  }));
  assert.equal(plan.kind === 'proceed' && plan.steps[0]?.action, 'launch');
});

test('excluded nodes are not offered again', () => {
  const plan = planRequest(input({ readyNodes: [readyNode('0000000001', 'a')], exclude: new Set(['0000000001']) }));
  assert.equal(plan.kind === 'proceed' && plan.steps[0]?.action, 'launch');
});

test('waits (pauses) at pool capacity; min-ready is declined instead', () => {
  const full = {
    provider: { cores: Infinity, instances: Infinity, ram: Infinity },
    providerUsed: { cores: 8, instances: 2, ram: 16384 },
    poolUsed: { cores: 8, instances: 2, ram: 16384 },
  };
  const plan = planRequest(input({ pool: pool({ maxServers: 2 }), quota: full }));
  assert.equal(plan.kind === 'proceed' && plan.steps[0]?.action, 'wait');
  const minReady = planRequest(input({
    pool: pool({ maxServers: 2 }), quota: full,
    request: newNodeRequest({ node_types: ['a'], requestor: 'NodePool:min-ready', reuse: false }),
  }));
  assert.equal(minReady.kind, 'decline');
});

test('pool max-cores and cloud quota are honoured per launch', () => {
  const plan = planRequest(input({
    request: newNodeRequest({ node_types: ['a', 'a'] }),
    pool: pool({ maxCores: 11 }),
    quota: {
      provider: { cores: Infinity, instances: Infinity, ram: Infinity },
      providerUsed: { cores: 4, instances: 1, ram: 8192 },
      poolUsed: { cores: 4, instances: 1, ram: 8192 },
    },
  }));
  assert.equal(plan.kind, 'proceed');
  if (plan.kind !== 'proceed') return;
  assert.deepEqual(plan.steps.map((s) => s.action), ['launch', 'wait']);
});

test('static pools never launch: they wait for a registered node', () => {
  const plan = planRequest(input({ pool: pool({ canLaunch: false }) }));
  assert.equal(plan.kind === 'proceed' && plan.steps[0]?.action, 'wait');
});

test('already satisfied labels are not planned again', () => {
  assert.deepEqual(neededLabels(['a', 'b', 'a'], ['a']), ['b', 'a']);
  const plan = planRequest(input({ request: newNodeRequest({ node_types: ['a', 'b'] }), satisfied: ['a', 'b'] }));
  assert.deepEqual(plan, { kind: 'proceed', steps: [] });
});

test('requests sort by priority prefix, relative priority, then sequence', () => {
  const ids = [
    { id: '500-0000000123', relative_priority: 0 },
    { id: '100-0000000456', relative_priority: 0 },
    { id: '400-0000000123', relative_priority: 0 },
    { id: '100-0000000123', relative_priority: 0 },
    { id: '100-0000000789', relative_priority: -1 },
  ];
  assert.deepEqual(ids.sort(compareRequests).map((r) => r.id),
    ['100-0000000789', '100-0000000123', '100-0000000456', '400-0000000123', '500-0000000123']);
});

test('the request order is that of comparing the split ids, for ids of any shape', () => {
  // the order as first written: split('-', 2), then string comparison
  const reference = (a: { id: string | null; relative_priority: number }, b: { id: string | null; relative_priority: number }): number => {
    const [ap = '', as = ''] = (a.id ?? '').split('-', 2);
    const [bp = '', bs = ''] = (b.id ?? '').split('-', 2);
    if (ap !== bp) return ap < bp ? -1 : 1;
    if (a.relative_priority !== b.relative_priority) return a.relative_priority - b.relative_priority;
    return as < bs ? -1 : as > bs ? 1 : 0;
  };
  const parts = ['', '-', '1', '10', '100', '200', '0000000001', '0000000010', 'a', 'é', '--'];
  const ids: (string | null)[] = [null];
  for (const p of parts) for (const q of parts) ids.push(p + q, `${p}-${q}`, `${p}-${q}-x`);
  const reqs = ids.flatMap((id) => [-1, 0, 2].map((relative_priority) => ({ id, relative_priority })));
  for (const a of reqs) {
    for (const b of reqs) assert.equal(Math.sign(compareRequests(a, b)), Math.sign(reference(a, b)), `${a.id}/${a.relative_priority} vs ${b.id}/${b.relative_priority}`);
  }
});
