// Listing commands against a real ZooKeeper, byte for byte against Nodepool's own output: the
// znodes are seeded with the data of the sample captures (same ids, same ZooKeeper children
// order, state_times chosen so that Age matches at an injected "now").
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { newImageBuild, newImageUpload, newNode, newNodeRequest } from '@nodepool-ts/core/model';
import type { Node, NodeRequest } from '@nodepool-ts/core/model';
import { paths } from '@nodepool-ts/core/zk';
import { makeFixture, runCli, SAMPLES } from './helpers.js';
import type { Fixture } from './helpers.js';

const sample = (name: string) => readFileSync(`${SAMPLES}/${name}`, 'utf8');

const NOW = 1795779600;
const L1 = 'vm-15046-PoolWorker.fake-provider-main';
const L2 = 'vm-16378-PoolWorker.fake-provider-main';

// id → [label, server id, launcher, age at NOW in seconds (+ a fraction that truncation drops)]
const NODES: [string, string, string, string, number][] = [
  ['0000000000', 'fake-label', 'b423531e91b44179a4d5fc6c3dcfd3c8', L1, 101.3],
  ['0000000001', 'fake-label', 'ca15256cbedd405992268820d9191ef4', L1, 101.3],
  ['0000000002', 'fake-label', '5da85eb8cf724e3a888ce8ddce7a6919', L2, 77.5],
  ['0000000003', 'fake-label', '58634a4f93a54620bc284ea8b313677a', L2, 77.5],
  ['0000000004', 'fake-dib-label', '185e7a64b66b4794a4a17a544be9d5ae', L2, 67.2],
];

function fakeNode(label: string, serverId: string, launcher: string, stateTime: number): Node {
  return newNode({
    state: 'ready', state_time: stateTime, provider: 'fake-provider', pool: 'main', type: [label],
    external_id: serverId, public_ipv4: 'fake', private_ipv4: 'fake', public_ipv6: '', az: 'az1',
    region: 'fake-region', cloud: 'fake', interface_ip: 'fake', connection_port: 22,
    connection_type: 'ssh', launcher, hostname: `${label}-fake-provider-${'x'}`,
  });
}

describe('listings match Nodepool byte for byte', () => {
  let fx: Fixture;
  const nodes = new Map<string, Node>();
  const cfg = () => ['-c', fx.configFile];

  before(async () => {
    fx = await makeFixture();
    for (const [id, label, server, launcher, age] of NODES) {
      const node = fakeNode(label, server, launcher, NOW - age);
      await fx.zk.storeNode(node); // sequential: ids 0000000000.. in a fresh chroot
      assert.equal(node.id, id);
      node.hostname = `${label}-fake-provider-${id}`;
      await fx.zk.storeNode(node);
      nodes.set(id, node);
    }
  });
  after(async () => { await fx.cleanup(); });

  test('list (9 columns, ZooKeeper children order)', async () => {
    const r = await runCli([...cfg(), 'list'], { now: NOW });
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.equal(r.stdout, sample('list.txt'));
  });

  test('list --detail (18 columns)', async () => {
    const r = await runCli([...cfg(), 'list', '--detail'], { now: NOW + 3 });
    assert.equal(r.code, 0);
    assert.equal(r.stdout, sample('list-detail.txt'));
  });

  test('info <provider>', async () => {
    await fx.zk.mkdirp(paths.upload('fake-dib-image', '0000000001', 'fake-provider', '0000000001'));
    await fx.zk.storeBuild('fake-dib-image',
      newImageBuild({ state: 'ready', state_time: NOW - 87 + 0.3, builder: 'vm', formats: ['qcow2'] }), '0000000001');
    await fx.zk.storeImageUpload('fake-dib-image', '0000000001', 'fake-provider', newImageUpload({
      state: 'ready', state_time: NOW - 74 + 0.3, external_id: 'dc0575780ac64f92967656cda6eb4f12',
      external_name: 'fake-dib-image-1795779352', format: 'qcow2',
    }), '0000000001');
    const r = await runCli([...cfg(), 'info', 'fake-provider'], { now: NOW });
    assert.equal(r.code, 0);
    assert.equal(r.stdout, sample('info-fake-provider.txt'));
    const other = await runCli([...cfg(), 'info', 'no-such-provider']);
    assert.equal(other.stdout, [
      'ZooKeeper data for provider no-such-provider', '', 'Image builds:',
      '+------------+-----------+', '| Image Name | Build IDs |', '+------------+-----------+', '+------------+-----------+',
      '', 'Nodes:', '+----+-----------+', '| ID | Server ID |', '+----+-----------+', '+----+-----------+', '',
    ].join('\n'));
  });

  test('dib-image-list and image-list (age of the truncated state_time)', async () => {
    const dib = await runCli([...cfg(), 'dib-image-list'], { now: NOW });
    assert.equal(dib.code, 0);
    assert.equal(dib.stdout, sample('dib-image-list.txt'));
    const img = await runCli([...cfg(), 'image-list'], { now: NOW });
    assert.equal(img.code, 0);
    assert.equal(img.stdout, sample('image-list.txt'));
  });

  test('dib-image-list / image-list --json carry int state_time as age', async () => {
    const dib = await runCli([...cfg(), 'dib-image-list', '--json'], { now: NOW });
    assert.equal(dib.stdout,
      `[{"id": "fake-dib-image-0000000001", "image": "fake-dib-image", "builder": "vm", "formats": ["qcow2"], "state": "ready", "age": ${NOW - 87}}]\n`);
    const img = JSON.parse((await runCli([...cfg(), '--json', 'image-list'])).stdout) as Record<string, unknown>[];
    assert.deepEqual(img, [{
      id: '0000000001', upload_id: '0000000001', provider: 'fake-provider', image: 'fake-dib-image',
      external_name: 'fake-dib-image-1795779352', external_id: 'dc0575780ac64f92967656cda6eb4f12',
      state: 'ready', age: NOW - 74,
    }]);
  });

  describe('requests', () => {
    const reqs: NodeRequest[] = [];
    test('request-list, empty', async () => {
      const r = await runCli([...cfg(), 'request-list']);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, sample('request-list-empty.txt'));
    });

    test('request-list, requested', async () => {
      // burn sequence numbers so that the ids are those of the capture (100-0000000006 ..)
      for (let i = 0; i < 6; i++) {
        const dummy = newNodeRequest({ node_types: ['x'] });
        await fx.zk.submitNodeRequest(dummy, '100');
        await fx.zk.deleteNodeRequest(dummy.id ?? '');
      }
      for (const types of [['fake-label'], ['fake-label', 'fake-label2'], ['no-such-label']]) {
        const req = newNodeRequest({ node_types: types, requestor: 'zuul-like-client:capture', state_time: NOW });
        await fx.zk.submitNodeRequest(req, '100');
        reqs.push(req);
      }
      assert.deepEqual(reqs.map((q) => q.id), ['100-0000000006', '100-0000000007', '100-0000000008']);
      const r = await runCli([...cfg(), 'request-list']);
      assert.equal(r.stdout, sample('request-list-requested.txt'));
    });

    test('list with a locked node and allocations', async () => {
      const [r6, r7, r8] = reqs;
      assert.ok(r6 && r7 && r8);
      const n5 = fakeNode('fake-label2', 'ee67aa1c71d645f095004be4d48589ab', L2, NOW + 48 - 15.5);
      await fx.zk.storeNode(n5);
      assert.equal(n5.id, '0000000005');
      n5.hostname = 'fake-label2-fake-provider-0000000005';
      n5.allocated_to = '100-0000000007';
      await fx.zk.storeNode(n5);
      const n0 = nodes.get('0000000000');
      const n1 = nodes.get('0000000001');
      assert.ok(n0 && n1);
      n0.allocated_to = '100-0000000007';
      n1.allocated_to = '100-0000000006';
      await fx.zk.storeNode(n0);
      await fx.zk.storeNode(n1);
      // held by another session (the seeding client), as Zuul would
      assert.equal(await fx.zk.lockNode(n0, { blocking: false }), true);
      try {
        const r = await runCli([...cfg(), 'list', '--detail'], { now: NOW + 48 });
        assert.equal(r.stdout, sample('list-with-locked-allocated.txt'));
        const j = JSON.parse((await runCli([...cfg(), 'list', '--json'], { now: NOW + 48 })).stdout) as Record<string, unknown>[];
        assert.deepEqual(j.map((n) => n.locked), ['unlocked', 'locked', 'unlocked', 'unlocked', 'unlocked', 'unlocked']);
      } finally {
        await fx.zk.unlockNode(n0);
      }

      r6.state = 'fulfilled';
      r6.nodes = ['0000000001'];
      r7.state = 'fulfilled';
      r7.nodes = ['0000000000', '0000000005'];
      r8.state = 'failed';
      r8.declined_by = [L2];
      for (const q of [r6, r7, r8]) await fx.zk.storeNodeRequest(q);
      const r = await runCli([...cfg(), 'request-list']);
      assert.equal(r.stdout, sample('request-list-final.txt'));
    });

    test('request-list --json has the web API keys', async () => {
      const r = await runCli([...cfg(), 'request-list', '--json']);
      const rows = JSON.parse(r.stdout) as Record<string, unknown>[];
      assert.deepEqual(Object.keys(rows[0] ?? {}),
        ['id', 'relative_priority', 'state', 'requestor', 'node_types', 'nodes', 'declined_by']);
      assert.deepEqual(rows[1], {
        id: '100-0000000007', relative_priority: 0, state: 'fulfilled', requestor: 'zuul-like-client:capture',
        node_types: ['fake-label', 'fake-label2'], nodes: ['0000000000', '0000000005'], declined_by: [],
      });
    });
  });

  test('list --json: the web API node-list keys and values', async () => {
    const r = await runCli([...cfg(), 'list', '--json'], { now: NOW });
    assert.equal(r.code, 0);
    const rows = JSON.parse(r.stdout) as Record<string, unknown>[];
    assert.equal(rows.length, 6);
    assert.deepEqual(Object.keys(rows[0] ?? {}), [
      'id', 'provider', 'label', 'server_id', 'public_ipv4', 'ipv6', 'state', 'age', 'locked', 'pool',
      'hostname', 'private_ipv4', 'AZ', 'connection_port', 'launcher', 'allocated_to', 'hold_job', 'comment',
    ]);
    assert.deepEqual(rows[1], {
      id: '0000000000', provider: 'fake-provider', label: ['fake-label'], server_id: 'b423531e91b44179a4d5fc6c3dcfd3c8',
      public_ipv4: 'fake', ipv6: '', state: 'ready', age: '00:00:01:41', locked: 'unlocked', pool: 'main',
      hostname: 'fake-label-fake-provider-0000000000', private_ipv4: 'fake', AZ: 'az1', connection_port: 22,
      launcher: L1, allocated_to: '100-0000000007', hold_job: null, comment: null,
    });
  });

  test('label-list: union of the registered launchers\' labels', async () => {
    const empty = await runCli([...cfg(), 'label-list']);
    assert.equal(empty.stdout, '+-------+\n| Label |\n+-------+\n+-------+\n');
    await fx.zk.registerLauncher({ id: `${L1}`, provider_name: 'fake-provider', supported_labels: ['fake-dib-label', 'fake-label'] });
    await fx.zk.registerLauncher({ id: `${L2}`, provider_name: 'fake-provider', supported_labels: ['fake-label', 'fake-label2'] });
    try {
      const r = await runCli([...cfg(), 'label-list']);
      // same layout as the web API's sample, rows sorted (Nodepool's order is a Python set's)
      const lines = sample('webapp-label-list.txt').split('\n');
      const expected = [...lines.slice(0, 3), ...lines.slice(3, 6).sort(), lines[6]].join('\n') + '\n';
      assert.equal(r.stdout, expected);
      const j = await runCli([...cfg(), 'label-list', '--json']);
      assert.equal(j.stdout, '[{"label": "fake-dib-label"}, {"label": "fake-label"}, {"label": "fake-label2"}]\n');
    } finally {
      await fx.zk.unregisterLauncher(L1);
      await fx.zk.unregisterLauncher(L2);
    }
  });

  test('empty listings print the empty tables', async () => {
    const empty = await makeFixture();
    try {
      const c = ['-c', empty.configFile];
      const list = await runCli([...c, 'list', '--detail']);
      assert.equal(list.stdout, sample('webapp-node-list.txt') + '\n');
      assert.equal((await runCli([...c, 'dib-image-list'])).stdout, sample('webapp-dib-image-list.txt') + '\n');
      assert.equal((await runCli([...c, 'image-list'])).stdout, sample('webapp-image-list.txt') + '\n');
      assert.equal((await runCli([...c, 'list', '--json'])).stdout, '[]\n');
    } finally {
      await empty.cleanup();
    }
  });
});
