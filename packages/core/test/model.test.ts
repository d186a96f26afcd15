// Model (de)serialisation against what Python's json module and Nodepool's fromDict do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  ModelError, buildFromData, buildToJson, launcherFromData, launcherToJson, newImageBuild, newImageUpload,
  newNode, newNodeRequest, nodeFromData, nodeToData, nodeToJson, pyFloatRepr, pythonJson, requestFromData,
  requestToJson, uploadFromData, uploadToJson, type Node,
} from '../src/model/index.js';
import { runPython } from './zk-helpers.js';

const SAMPLE = '/work/shared/docs/nodepool-output-samples/zk-node-and-request-json.json';

async function pyDumps(values: unknown[]): Promise<string[]> {
  const r = await runPython('dumps.py', [], JSON.stringify(values));
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').slice(0, -1);
}

test('sample node and request re-serialise byte for byte like json.dumps', async () => {
  const sample = JSON.parse(readFileSync(SAMPLE, 'utf8')) as {
    request_fulfilled: unknown; nodes: Record<string, unknown>; launcher_registration: unknown[];
  };
  const nodeDict = sample.nodes['0000000000'];
  const [pyNode, pyReq, pyLauncher] = await pyDumps([nodeDict, sample.request_fulfilled, sample.launcher_registration[0]]);
  const node = nodeFromData('0000000000', JSON.stringify(nodeDict));
  assert.ok(node);
  assert.equal(nodeToJson(node), pyNode);
  const req = requestFromData('100-0000000000', JSON.stringify(sample.request_fulfilled));
  assert.ok(req);
  assert.equal(requestToJson(req), pyReq);
  const launcher = launcherFromData(JSON.stringify(sample.launcher_registration[0]));
  assert.ok(launcher);
  assert.equal(launcherToJson(launcher), pyLauncher);
  // and reading what we wrote gives the same object back
  assert.deepEqual(nodeFromData('0000000000', nodeToData(node)), node);
});

test('pythonJson matches json.dumps on awkward values', async () => {
  const values: unknown[] = [
    { a: 'é ü \u2603 \u{1F600} "q" \\ \n\t\r\b\f \u0001 \u007f', b: [1, 2.5, -0.125, 1e-7, 123456789.123] },
    [0.1, 1e-5, 0.0001, 1.5e16, 1e16, 9999999999999998.5, 1234567890123456.7, -3.25e-10, 1555531533.4567893],
    { nested: { x: null, y: true, z: false, e: {}, l: [] } },
    'plain',
  ];
  const expected = await pyDumps(values);
  assert.deepEqual(values.map((v) => pythonJson(v)), expected);
});

test('floats are written like Python reprs them', () => {
  assert.equal(pyFloatRepr(1.0), '1.0');
  assert.equal(pyFloatRepr(1e16), '1e+16');
  assert.equal(pyFloatRepr(1e-5), '1e-05');
  assert.equal(pyFloatRepr(0.0001), '0.0001');
  assert.equal(pyFloatRepr(1795779505.8009048), '1795779505.8009048');
  const n = newNode({ state: 'ready', state_time: 1000, created_time: 1000 });
  assert.match(nodeToJson(n), /"state_time": 1000\.0, .*"created_time": 1000\.0,/);
});

test("random floats of every magnitude are written as Python's repr writes them", async () => {
  const values: number[] = [];
  for (let k = -9; k <= 20; k++) {
    for (let i = 0; i < 40; i++) {
      const v = (Math.random() + 0.001) * 10 ** k * (i % 2 === 0 ? 1 : -1);
      if (!Number.isInteger(v)) values.push(v); // (an integral value would reach Python as an int)
    }
  }
  values.push(1e-4, 9.999999999999999e-5, 123456789.5);
  const expected = await pyDumps(values);
  assert.deepEqual(values.map((v) => pyFloatRepr(v)), expected);
  for (const v of [1, 1000, -42, 1e15, 9999999999999998]) assert.equal(pyFloatRepr(v), `${v}.0`);
});

test('json.loads of what we write equals the objects (non-ASCII, unknown keys)', async () => {
  const node = newNode({
    state: 'hold', state_time: 1555531538.2, provider: 'rax', type: ['ubuntu-bionic', 'small'],
    comment: 'held for débogage \u2603', hold_expiration: 3600, connection_port: 2222,
    resources: { cores: 8, instances: 1, ram: 8192 }, attributes: { 'executor-zone': 'vpn' },
    extra: { event_id: 'abc123', tenant: { name: 'ünï' } },
  });
  const written = nodeToJson(node);
  const [pyWritten] = await pyDumps([JSON.parse(written)]);
  assert.equal(written, pyWritten);
  const parsed = JSON.parse(written) as Record<string, unknown>;
  assert.equal(parsed['ssh_port'], 2222);
  assert.equal(parsed['event_id'], 'abc123');
  // unknown keys come after the known ones, in their original order
  const keys = Object.keys(parsed);
  assert.deepEqual(keys.slice(-3), ['attributes', 'event_id', 'tenant']);
});

test('tolerant reading: empty, malformed, wrong shapes give null; defaults follow Nodepool', () => {
  for (const bad of [null, '', Buffer.alloc(0), '{', 'null', '[1,2]', '"x"', Buffer.from([0xff, 0xfe]), '{"state": "bogus"}', '{}']) {
    assert.equal(nodeFromData('1', bad), null, `node from ${String(bad)}`);
    assert.equal(requestFromData('1', bad), null, `request from ${String(bad)}`);
    assert.equal(buildFromData('img', '1', bad), null);
    assert.equal(uploadFromData('img', '1', 'p', '1', bad), null);
  }
  assert.equal(launcherFromData(''), null);
  assert.equal(launcherFromData('{"provider_name": "x"}'), null);

  const n = nodeFromData('7', '{"state": "ready", "type": "label-a", "ssh_port": 2200, "hold_expiration": "12"}');
  assert.ok(n);
  assert.deepEqual(n.type, ['label-a']);
  assert.equal(n.connection_port, 2200);
  assert.equal(n.username, 'zuul', 'username defaults to zuul when the key is absent');
  assert.equal(n.hold_expiration, 12);
  assert.deepEqual(n.host_keys, []);
  assert.deepEqual(n.extra, {});

  const n2 = nodeFromData('8', '{"state": "ready", "username": null, "hold_expiration": "soon", "type": null}');
  assert.ok(n2);
  assert.equal(n2.username, null, 'an explicit null username stays null');
  assert.equal(n2.hold_expiration, 0, 'non-numeric hold_expiration becomes 0');
  assert.deepEqual(n2.type, []);
  assert.equal(n2.connection_port, 22);
  assert.equal(nodeFromData('9', '{"state": "ready", "hold_expiration": 12.9}')?.hold_expiration, 12);
  assert.deepEqual(nodeFromData('9', '{"state": "ready", "connection_port": {"token": "t"}}')?.connection_port, { token: 't' });

  const r = requestFromData('100-0000000001', '{"state": "requested", "event_id": "e1", "node_types": ["a", "a"]}');
  assert.ok(r);
  assert.equal(r.reuse, true);
  assert.equal(r.relative_priority, 0);
  assert.deepEqual(r.node_types, ['a', 'a']);
  assert.deepEqual(r.extra, { event_id: 'e1' });
  assert.equal(requestToJson(r).endsWith(', "relative_priority": 0, "event_id": "e1"}'), true);
});

test('builds: formats comma-joined sorted, builder keys omitted when null; uploads', () => {
  const b = newImageBuild({ state: 'ready', state_time: 1555520000.5, formats: ['vhd', 'qcow2'] });
  assert.equal(buildToJson(b), '{"state": "ready", "state_time": 1555520000.5, "formats": "qcow2,vhd", "username": "zuul"}');
  const b2 = newImageBuild({ state: 'building', state_time: 1.5, builder: 'nb01', builder_id: 'u-1' });
  assert.equal(buildToJson(b2), '{"state": "building", "state_time": 1.5, "builder": "nb01", "builder_id": "u-1", "username": "zuul"}');
  const back = buildFromData('ubuntu', '0000000001', buildToJson(b));
  assert.ok(back);
  assert.deepEqual(back.formats, ['qcow2', 'vhd']);
  assert.equal(back.id, '0000000001');
  assert.equal(back.image, 'ubuntu');
  assert.deepEqual(buildFromData('u', '1', '{"state": "ready", "formats": ""}')?.formats, []);

  const u = newImageUpload({ state: 'ready', state_time: 1555521000.9, external_id: 'x', external_name: 'n', format: 'qcow2' });
  assert.equal(uploadToJson(u), '{"state": "ready", "state_time": 1555521000.9, "external_id": "x", "external_name": "n", "format": "qcow2", "username": "zuul"}');
  assert.equal(uploadFromData('i', '1', 'p', '2', '{"state": "ready"}')?.username, 'zuul');
});

test('ids are not serialised; invalid state or id type is refused on write', () => {
  const n = newNode({ id: '0000000001', state: 'ready' });
  assert.equal(nodeToJson(n).includes('0000000001'), false);
  assert.throws(() => nodeToJson({ ...n, state: 'bogus' } as unknown as Node), ModelError);
  assert.throws(() => nodeToJson({ ...n, id: 5 } as unknown as Node), (e: unknown) => e instanceof ModelError && e.code === 'EMODEL');
  assert.throws(() => requestToJson({ ...newNodeRequest(), state: 'ready' } as unknown as ReturnType<typeof newNodeRequest>), ModelError);
  assert.throws(() => buildToJson({ ...newImageBuild(), state: 'uploading' } as unknown as ReturnType<typeof newImageBuild>), ModelError);
  assert.throws(() => uploadToJson({ ...newImageUpload(), state: 'building' } as unknown as ReturnType<typeof newImageUpload>), ModelError);
});

test('Node default connection_port 22 round-trips; launcher labels are a sorted set', () => {
  const n = newNode({ state: 'ready' });
  const back = nodeFromData('1', nodeToData(n));
  assert.equal(back?.connection_port, 22);
  assert.match(nodeToJson(n), /"connection_port": 22, "ssh_port": 22,/);
  assert.equal(
    launcherToJson({ id: 'l1', provider_name: 'p', supported_labels: ['b', 'a', 'b'] }),
    '{"id": "l1", "provider_name": "p", "supported_labels": ["a", "b"]}',
  );
});

test('a launcher registration with priority carries paused; without, it reads as the 3.x one', () => {
  const json = launcherToJson({ id: 'l1', provider_name: 'p', supported_labels: ['a'], priority: 1, paused: true });
  assert.equal(json, '{"id": "l1", "provider_name": "p", "supported_labels": ["a"], "priority": 1, "paused": true}');
  assert.deepEqual(launcherFromData(json), { id: 'l1', provider_name: 'p', supported_labels: ['a'], priority: 1, paused: true });
  assert.deepEqual(launcherFromData('{"id": "l1", "supported_labels": ["a"]}'), { id: 'l1', provider_name: 'unknown', supported_labels: ['a'] });
  assert.deepEqual(launcherFromData('{"id": "l1", "supported_labels": [], "priority": "high"}'), { id: 'l1', provider_name: 'unknown', supported_labels: [] });
});
