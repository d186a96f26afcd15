// The metastatic bookkeeping without ZooKeeper: slots, Nodepool's user_data bytes, the idle
// rules (grace-time, min-retention-time, max-age) and the fields a node takes from its backing node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { MetastaticPoolLabel } from '@nodepool-ts/core/config';
import { newNode, nodeToJson } from '@nodepool-ts/core/model';
import {
  BackingNodeRecord, applyBackingNode, decodeUserData, encodeUserData, metastaticOwner, releaseDecision, slotOf,
} from '../src/index.js';

const LABEL: MetastaticPoolLabel = {
  name: 'user-label', backingLabel: 'backing-label', maxParallelJobs: 2, graceTime: 60,
  minRetentionTime: 0, maxAge: null, hostKeyChecking: false,
};

test('user_data is what Nodepool\'s json.dumps writes, and reads back', () => {
  const u = { owner: metastaticOwner('meta-provider'), label: 'user-label', slots: 2, failed: false, launched: 1732712345.125 };
  const text = encodeUserData(u);
  assert.equal(text, '{"owner": "NodePool:metastatic:meta-provider", "label": "user-label", "slots": 2, "failed": false, "launched": 1732712345.125}');
  const py = execFileSync('/usr/bin/python3', ['-c',
    'import json; print(json.dumps({"owner": "NodePool:metastatic:meta-provider", "label": "user-label", "slots": 2, "failed": False, "launched": 1732712345.125}))'],
  { encoding: 'utf8' }).trim();
  assert.equal(text, py);
  assert.equal(encodeUserData({ ...u, launched: 1732712345 }).endsWith('"launched": 1732712345.0}'), true, 'a float, as time.time() is');
  assert.deepEqual(decodeUserData(text), u);
  // Nodepool's reader: failed and launched may be missing
  assert.deepEqual(decodeUserData('{"owner": "x", "label": "l", "slots": 1}'), { owner: 'x', label: 'l', slots: 1, failed: false, launched: 0 });
  for (const bad of [null, 42, '', 'not json', '[]', '{"label": "l", "slots": 1}', '{"owner": "x", "label": "l", "slots": 0}']) {
    assert.equal(decodeUserData(bad), null, String(bad));
  }
});

test('slots: first free one, a given one, freed ones; a failed backing node takes none', () => {
  const r = new BackingNodeRecord('user-label', 2, 100);
  assert.equal(r.allocate('a'), 0);
  assert.equal(r.allocate('b'), 1);
  assert.equal(r.hasAvailableSlot(), false);
  assert.throws(() => r.allocate('c'), /has no slot -1/);
  assert.equal(r.deallocate('a', 150), 0);
  assert.equal(r.lastUsed, 150);
  assert.equal(r.deallocate('zzz', 160), -1);
  assert.equal(r.lastUsed, 150);
  assert.throws(() => r.allocate('c', 1), /slot 1 .* already allocated to node b/);
  assert.equal(r.allocate('c', 0), 0);
  assert.ok(r.backs('c'));
  assert.equal(r.deallocate('c', 170), 0);
  r.failed = true;
  assert.equal(r.hasAvailableSlot(), false);
  assert.deepEqual(r.userData('o'), { owner: 'o', label: 'user-label', slots: 2, failed: true, launched: 100 });
});

test('release: after grace-time when empty, not before min-retention-time; max-age fails it', () => {
  const r = new BackingNodeRecord('user-label', 2, 1000);
  r.nodeId = '0000000001';
  r.allocate('n1');
  assert.deepEqual(releaseDecision(r, LABEL, 2000), { release: false, wakeAt: null }, 'busy');
  r.deallocate('n1', 2000);
  assert.deepEqual(releaseDecision(r, LABEL, 2030), { release: false, wakeAt: 2060 });
  assert.equal(releaseDecision(r, LABEL, 2061).release, true);
  // min-retention-time counts from the request
  const keep = { ...LABEL, graceTime: 0, minRetentionTime: 3000 };
  assert.deepEqual(releaseDecision(r, keep, 2061), { release: false, wakeAt: 4000 });
  assert.equal(releaseDecision(r, keep, 4001).release, true);
  // a label gone from the config: released at once
  assert.equal(releaseDecision(r, undefined, 2001).release, true);
  // max-age: out of service once old, released once empty whatever grace-time says
  const aged = new BackingNodeRecord('user-label', 2, 1000);
  aged.nodeId = '0000000002';
  aged.allocate('n2');
  const old = { ...LABEL, maxAge: 500, graceTime: 600 };
  assert.deepEqual(releaseDecision(aged, old, 1400), { release: false, wakeAt: 1500 });
  assert.equal(aged.failed, false);
  assert.deepEqual(releaseDecision(aged, old, 1501), { release: false, wakeAt: null });
  assert.equal(aged.failed, true);
  aged.deallocate('n2', 1600);
  assert.equal(releaseDecision(aged, old, 1600.5).release, true);
  // a backing node still being requested is never released
  const asked = new BackingNodeRecord('user-label', 1, 1000);
  asked.requestId = '100-0000000007';
  assert.deepEqual(releaseDecision(asked, LABEL, 9000), { release: false, wakeAt: null });
});

test('a node takes its backing node\'s connection fields and records its slot like Nodepool', () => {
  const backing = newNode({
    id: '0000000001', state: 'in-use', provider: 'fake-provider', pool: 'main', type: ['backing-label'],
    cloud: 'fake', region: 'fake-region', az: 'az1', interface_ip: '198.18.0.5', public_ipv4: '198.18.0.5',
    private_ipv4: '10.0.0.5', public_ipv6: '', host_id: 'h1', username: 'zuul', connection_type: 'ssh', connection_port: 22,
    host_keys: ['ssh-ed25519 AAAA'], attributes: { backattr: 'back', testattr: 'backing' }, external_id: 'srv-1',
    extra: { python_path: '/usr/bin/python3' },
  });
  const node = newNode({ id: '0000000002', state: 'building', provider: 'meta-provider', pool: 'main', type: ['user-label'],
    attributes: { metaattr: 'meta', testattr: 'metastatic' } });
  applyBackingNode(node, backing, 1, { name: 'main', provider: 'meta-provider' });
  assert.equal(node.external_id, '0000000002');
  assert.equal(node.interface_ip, '198.18.0.5');
  assert.equal(node.private_ipv4, '10.0.0.5');
  assert.equal(node.public_ipv6, '');
  assert.equal(node.host_id, null);
  assert.equal(node.az, 'az1');
  assert.deepEqual(node.host_keys, ['ssh-ed25519 AAAA']);
  assert.deepEqual(node.resources, { cores: 0, instances: 1, ram: 0 });
  assert.deepEqual(node.attributes, { backattr: 'back', metaattr: 'meta', testattr: 'metastatic' });
  assert.deepEqual(slotOf(node), { backingNode: '0000000001', slot: 1 });
  const json = nodeToJson(node);
  assert.ok(json.includes('"python_path": "/usr/bin/python3", "shell_type": null, "driver_data": {"metadata": {"nodepool_node_id": "0000000002", '
    + '"nodepool_pool_name": "main", "nodepool_provider_name": "meta-provider"}, "backing_node": "0000000001", "slot": 1, "node": "0000000002"}, "slot": 1}'), json);
  assert.equal(slotOf(newNode({ extra: { driver_data: { backing_node: 3, slot: 0 } } })), null);
});
