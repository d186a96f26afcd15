// The launch circuit breaker's states on a hand-driven clock, and how a plan obeys it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newNode } from '@nodepool-ts/core/model';
import { LaunchCircuit, type CircuitChange } from '../src/circuit-breaker.js';
import { planRequest, type PlanInput } from '../src/decide.js';

function circuit(failures = 3, cooldown = 10, maxCooldown = 35) {
  let now = 1_000_000;
  const changes: CircuitChange[] = [];
  const c = new LaunchCircuit('p', { failures, cooldown, maxCooldown }, (ch) => changes.push(ch), () => now);
  return { c, changes, advance: (s: number) => { now += s * 1000; }, now: () => now };
}

test('failures in a row open the circuit; a success in between resets the count', () => {
  const { c, changes } = circuit();
  c.launchEnded('failed');
  c.launchEnded('failed');
  c.launchEnded('ready');
  c.launchEnded('failed');
  c.launchEnded('failed');
  c.launchEnded('aborted');
  assert.equal(c.state, 'closed', 'a quota abort neither counts nor resets');
  assert.equal(c.launchAllowance(), Infinity);
  c.launchEnded('failed');
  assert.equal(c.state, 'open');
  assert.equal(c.launchAllowance(), 0);
  assert.match(c.refusal(), /^provider p suspended launches after 3 failed launches in a row \(next trial in 10 s\)$/);
  assert.equal(changes.length, 1);
  assert.equal(changes[0]?.state, 'open');
});

test('after the cooldown one trial launch; its failure doubles the wait up to max-cooldown, its success closes', () => {
  const { c, changes, advance, now } = circuit();
  for (let i = 0; i < 3; i++) c.launchEnded('failed');
  advance(9.9);
  assert.equal(c.launchAllowance(), 0);
  advance(0.1);
  assert.equal(c.state, 'half-open');
  assert.equal(c.launchAllowance(), 1);
  c.launchesStarted(1);
  assert.equal(c.launchAllowance(), 0, 'one trial at a time');
  assert.match(c.refusal(), /a trial launch is running/);
  c.launchEnded('failed');
  assert.equal(c.state, 'open');
  assert.equal(changes.at(-1)?.retryAt, now() + 20_000);
  advance(20);
  c.launchesStarted(1);
  c.launchEnded('failed');
  assert.equal(changes.at(-1)?.retryAt, now() + 35_000, 'capped by max-cooldown');
  advance(35);
  c.launchesStarted(1);
  c.launchEnded('ready');
  assert.equal(c.state, 'closed');
  assert.equal(changes.at(-1)?.state, 'closed');
  // closed again: the next opening waits the configured cooldown, not the doubled one
  for (let i = 0; i < 3; i++) c.launchEnded('failed');
  assert.equal(changes.at(-1)?.retryAt, now() + 10_000);
});

test('a launch that started before the circuit opened does not count as its trial', () => {
  const { c, changes } = circuit(1);
  c.launchEnded('failed');
  assert.equal(changes.length, 1);
  c.launchEnded('failed');
  assert.equal(changes.length, 1, 'no reopening without a trial');
  c.launchEnded('ready');
  assert.equal(c.state, 'closed', 'but any success shows the cloud is back');
});

test('a plan that needs a launch beyond the allowance is declined; READY nodes are still handed out', () => {
  const ready = newNode({ id: '0000000001', type: ['small'], provider: 'p', pool: 'main', state: 'ready' });
  const input = (readyNodes = [ready]): PlanInput => ({
    request: { id: '100-0000000001', node_types: ['small'], reuse: true, requestor: 'zuul' },
    pool: {
      provider: 'p', pool: 'main', maxServers: 10, maxCores: Infinity, maxRam: Infinity,
      labels: new Map([['small', { cores: 1, instances: 1, ram: 1 }]]), canLaunch: true, ignoreProviderQuota: true,
    },
    quota: {
      provider: { cores: Infinity, instances: Infinity, ram: Infinity },
      providerUsed: { cores: 0, instances: 0, ram: 0 }, poolUsed: { cores: 0, instances: 0, ram: 0 },
    },
    unavailableLabels: new Set(),
    readyNodes,
    launchAllowance: 0,
    launchRefusal: 'suspended',
  });
  const served = planRequest(input());
  assert.equal(served.kind, 'proceed');
  assert.deepEqual(served.kind === 'proceed' ? served.steps.map((s) => s.action) : [], ['reuse']);
  assert.deepEqual(planRequest(input([])), { kind: 'decline', reason: 'suspended' });
  const two = { ...input([]), request: { ...input([]).request, node_types: ['small', 'small'] }, launchAllowance: 1 };
  assert.deepEqual(planRequest(two), { kind: 'decline', reason: 'suspended' }, 'a trial is one launch');
  assert.equal(planRequest({ ...two, launchAllowance: Infinity }).kind, 'proceed');
});
