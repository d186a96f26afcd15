// Nodepool's web API (§7, §9.4) against the real samples: text tables byte for byte (no final
// newline), Python json.dumps JSON, headers, conditional GET, fields=, node_id, 404, /ready.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { newNodeRequest } from '@nodepool-ts/core/model';
import { bestMatch } from '../src/web/nodepool-api.js';
import { SAMPLES, bareWeb, fakeConfig, http, launcherWeb, waitFor, type BareWeb } from './web-helpers.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function sample(name: string): string {
  return readFileSync(`${SAMPLES}/${name}`, 'utf8');
}

/** The sample's header block as name → value (lower-case names). */
function sampleHeaders(name: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of sample(name).split(/\r?\n/).slice(1)) {
    const i = line.indexOf(': ');
    if (i > 0) out.set(line.slice(0, i).toLowerCase(), line.slice(i + 2));
  }
  return out;
}

const SAMPLE_LABELS = ['fake-label', 'fake-dib-label', 'fake-label2'];

async function sampleWeb(): Promise<BareWeb> {
  const w = await bareWeb((env) => fakeConfig(env, { labels: SAMPLE_LABELS.map((name) => ({ name })) }));
  cleanups.push(() => w.close());
  // the launcher registration Nodepool's sample came from
  await w.zk.registerLauncher({ id: 'sample-1-PoolWorker.fake-provider-main', provider_name: 'fake-provider', supported_labels: SAMPLE_LABELS });
  // the request of the sample: a Zuul-like client at priority 100, nobody handles it
  const req = newNodeRequest({ node_types: ['fake-label'], requestor: 'zuul-like-client:check' });
  assert.equal(await w.zk.submitNodeRequest(req, '100'), '100-0000000000');
  return w;
}

test('text listings match Nodepool\'s samples byte for byte, with its headers', async () => {
  const w = await sampleWeb();
  for (const name of ['image-list', 'dib-image-list', 'node-list', 'request-list']) {
    const r = await http(`${w.url}/${name}`);
    assert.equal(r.status, 200, name);
    assert.equal(r.text, sample(`webapp-${name}.txt`), `${name} text`);
    const want = sampleHeaders(`webapp-${name}.headers.txt`);
    for (const h of ['content-type', 'content-length', 'access-control-allow-origin', 'cache-control']) {
      assert.equal(r.headers.get(h), want.get(h), `${name} ${h}`);
    }
    const lm = Date.parse(r.headers.get('last-modified') ?? '');
    const exp = Date.parse(r.headers.get('expires') ?? '');
    assert.ok(Math.abs(lm - Date.now()) < 5000, 'Last-Modified is now');
    assert.equal(exp - lm, 1000, 'Expires = Last-Modified + 1 s');
  }
  // label-list: Nodepool prints a Python set (unordered); we sort. Same table otherwise.
  const r = await http(`${w.url}/label-list`);
  const want = sample('webapp-label-list.txt');
  assert.equal(r.text.length, want.length);
  assert.deepEqual(r.text.split('\n').sort(), want.split('\n').sort());
  assert.equal(r.headers.get('content-length'), sampleHeaders('webapp-label-list.headers.txt').get('content-length'));
});

test('JSON listings match the samples (Accept: application/json and .json)', async () => {
  const w = await sampleWeb();
  for (const name of ['image-list', 'dib-image-list', 'node-list', 'request-list']) {
    const a = await http(`${w.url}/${name}`, { headers: { Accept: 'application/json' } });
    assert.equal(a.status, 200);
    assert.equal(a.headers.get('content-type'), 'application/json', 'no charset, like Nodepool');
    assert.equal(a.text, sample(`webapp-${name}.json`), name);
    const b = await http(`${w.url}/${name}.json`);
    assert.equal(b.text, a.text, `${name}.json`);
  }
  const labels = await http(`${w.url}/label-list.json`);
  const got = labels.json() as { label: string }[];
  assert.deepEqual(got.map((l) => l.label).sort(), [...SAMPLE_LABELS].sort());
  assert.match(labels.text, /^\[\{"label": "fake-dib-label"\}, \{"label": /, 'Python json.dumps separators');
});

test('content negotiation follows webob best_match; no acceptable type is 406', () => {
  assert.equal(bestMatch(undefined), 'text/html');
  assert.equal(bestMatch('*/*'), 'text/html');
  assert.equal(bestMatch('text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'), 'text/html');
  assert.equal(bestMatch('application/json'), 'application/json');
  assert.equal(bestMatch('application/json, text/plain;q=0.5'), 'application/json');
  assert.equal(bestMatch('text/plain'), 'text/plain');
  assert.equal(bestMatch('application/*'), 'application/json');
  assert.equal(bestMatch('image/png'), null);
});

test('browser Accept and text/plain give text; an impossible Accept gives 406', async () => {
  const w = await sampleWeb();
  const browser = await http(`${w.url}/image-list`, { headers: { Accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
  assert.equal(browser.headers.get('content-type'), 'text/plain; charset=UTF-8');
  const plain = await http(`${w.url}/image-list`, { headers: { Accept: 'text/plain' } });
  assert.equal(plain.text, sample('webapp-image-list.txt'));
  const bad = await http(`${w.url}/image-list`, { headers: { Accept: 'image/png' } });
  assert.equal(bad.status, 406);
  assert.equal((bad.json() as { code: string }).code, 'not_acceptable');
});

test('If-Modified-Since gives 304 with the cache headers; an older date gives the body', async () => {
  const w = await sampleWeb();
  const first = await http(`${w.url}/request-list`);
  const lm = first.headers.get('last-modified') ?? '';
  const again = await fetch(`${w.url}/request-list`, { headers: { 'If-Modified-Since': lm } });
  assert.equal(again.status, 304);
  assert.equal(await again.text(), '');
  assert.equal(again.headers.get('cache-control'), 'max-age=1, public');
  assert.equal(again.headers.get('access-control-allow-origin'), '*');
  const older = await http(`${w.url}/request-list`, { headers: { 'If-Modified-Since': new Date(Date.parse(lm) - 60_000).toUTCString() } });
  assert.equal(older.status, 200);
  assert.equal(older.text, sample('webapp-request-list.txt'));
});

test('fields= selects text columns in table order; JSON keeps every key', async () => {
  const w = await sampleWeb();
  const r = await http(`${w.url}/request-list?fields=state,id,nosuch`);
  assert.equal(r.text, [
    '+----------------+-----------+',
    '| Request ID     | State     |',
    '+----------------+-----------+',
    '| 100-0000000000 | requested |',
    '+----------------+-----------+',
  ].join('\n'));
  const j = await http(`${w.url}/request-list?fields=state`, { headers: { Accept: 'application/json' } });
  assert.equal(j.text, sample('webapp-request-list.json'));
});

test('/image-status (Nodepool 6+): paused images and build requests, as text and JSON', async () => {
  const w = await sampleWeb();
  await w.zk.submitBuildRequest('fake-image');
  await w.zk.setImagePaused('fake-image', true);
  await w.zk.setImagePaused('other-image', true);
  await w.zk.submitBuildRequest('third-image');
  const r = await http(`${w.url}/image-status`);
  assert.equal(r.status, 200);
  const lines = r.text.split('\n');
  assert.equal(lines[1], '| Image       | Paused | Build Request | Build Request Age |');
  assert.match(lines[3] ?? '', /^\| fake-image  \| True   \| pending       \| 00:00:00:0\d       \|$/);
  assert.equal(lines[4], '| other-image | True   |               |                   |');
  assert.match(lines[5] ?? '', /^\| third-image \| False  \| pending       \| 00:00:00:0\d       \|$/);
  assert.equal(lines.length, 7, 'no final newline');
  const j = (await http(`${w.url}/image-status.json`)).json() as { image: string; paused: boolean; build_request: string | null; build_request_age: number | null }[];
  assert.deepEqual(j.map((x) => [x.image, x.paused, x.build_request, x.build_request_age === null ? null : typeof x.build_request_age]), [
    ['fake-image', true, 'pending', 'number'], ['other-image', true, null, null], ['third-image', false, 'pending', 'number'],
  ]);
});

test('unknown paths are 404 with a JSON error', async () => {
  const w = await sampleWeb();
  for (const p of ['/nope', '/node-list/x', '/image-statuses', '/api/v1/nope']) {
    const r = await http(`${w.url}${p}`);
    assert.equal(r.status, 404, p);
    assert.equal((r.json() as { code: string }).code, 'not_found');
  }
});

test('a launcher serves its nodes: node_id filter, unknown id, fields, 1 s cache, /ready 200 then 503', async () => {
  const lw = await launcherWeb((env) => fakeConfig(env, { labels: [{ name: 'fake-label', minReady: 2 }] }));
  cleanups.push(() => lw.close());
  const nodes = await waitFor('two ready nodes', async () => {
    const r = await http(`${lw.url}/node-list`, { headers: { Accept: 'application/json' } });
    const list = r.json() as { id: string; state: string }[];
    return list.length === 2 && list.every((n) => n.state === 'ready') ? list : null;
  }, 20_000, 200);
  // rows come in ZooKeeper's children order, like Nodepool's
  const first = nodes.find((n) => n.id === '0000000000');
  assert.ok(first, 'the first node id is 0000000000');
  const one = await http(`${lw.url}/node-list?node_id=${first.id}`, { headers: { Accept: 'application/json' } });
  const row = (one.json() as Record<string, unknown>[])[0];
  assert.ok(row);
  assert.deepEqual(Object.keys(row), ['id', 'provider', 'label', 'server_id', 'public_ipv4', 'ipv6', 'state', 'age',
    'locked', 'pool', 'hostname', 'private_ipv4', 'AZ', 'connection_port', 'launcher', 'allocated_to', 'hold_job', 'comment']);
  assert.deepEqual(row.label, ['fake-label']);
  assert.equal(row.locked, 'unlocked');
  assert.equal(row.ipv6, '');
  assert.match(String(row.age), /^\d\d:\d\d:\d\d:\d\d$/);
  const none = await http(`${lw.url}/node-list?node_id=9999999999`, { headers: { Accept: 'application/json' } });
  assert.equal(none.text, '[]');
  const weird = await http(`${lw.url}/node-list?node_id=..%2Fx`, { headers: { Accept: 'application/json' } });
  assert.equal(weird.text, '[]');
  const text = await http(`${lw.url}/node-list?node_id=${first.id}&fields=id,provider,state`);
  assert.match(text.text, /^\+-+\+-+\+-+\+\n\| ID +\| Provider +\| State +\|\n/);
  assert.ok(text.text.includes(`| ${first.id} | fake-provider | ready |`));
  assert.ok(!text.text.endsWith('\n'));

  // the listing is cached for a second: a change shows up after the cache expires
  const before = await http(`${lw.url}/node-list.json`);
  const node = await lw.zk.getNode(first.id);
  assert.ok(node);
  node.comment = 'cache probe';
  await lw.zk.storeNode(node);
  const cached = await http(`${lw.url}/node-list.json`);
  if (Date.parse(cached.headers.get('last-modified') ?? '') === Date.parse(before.headers.get('last-modified') ?? '')) {
    assert.equal(cached.text, before.text);
  }
  await waitFor('cache expiry', async () => (await http(`${lw.url}/node-list.json`)).text.includes('cache probe'), 5000, 200);

  assert.equal((await http(`${lw.url}/ready`)).status, 200);
  assert.equal((await http(`${lw.url}/ready`)).text, 'OK');
  const web = lw.launcher.webApp;
  assert.ok(web);
  // while stopping, readiness goes first
  const stopping = lw.launcher.stop();
  await stopping;
  await assert.rejects(fetch(`${lw.url}/ready`));
});

test('/ready is 503 while ZooKeeper is away', async () => {
  const w = await bareWeb((env) => fakeConfig(env));
  assert.equal((await http(`${w.url}/ready`)).status, 200);
  await w.zk.close();
  const r = await http(`${w.url}/ready`);
  assert.equal(r.status, 503);
  const l = await http(`${w.url}/node-list`);
  assert.equal(l.status, 503);
  assert.equal((l.json() as { code: string }).code, 'zookeeper_unavailable');
  await w.web.stop();
  w.host.stop();
  w.env.cleanup();
});

test('the OpenAPI document describes every endpoint with the schemas the server validates with', async () => {
  const w = await bareWeb((env) => fakeConfig(env), { leaseLimits: { maxTtl: 7200, maxNodesPerLease: 3 } });
  cleanups.push(() => w.close());
  const r = await http(`${w.url}/api/v1/openapi.json`);
  assert.equal(r.status, 200);
  const doc = r.json() as {
    openapi: string; paths: Record<string, Record<string, unknown>>;
    components: { schemas: Record<string, { properties: Record<string, { maximum?: number; additionalProperties?: { maximum?: number } }>; required?: string[] }> };
  };
  assert.equal(doc.openapi, '3.1.0');
  for (const p of ['/image-list', '/dib-image-list', '/image-status', '/node-list', '/request-list', '/label-list', '/ready', '/metrics',
    '/api/v1/leases', '/api/v1/leases/{id}', '/api/v1/status', '/api/v1/events', '/api/v1/history',
    '/api/v1/static-hosts', '/api/v1/static-hosts/{name}']) {
    assert.ok(doc.paths[p], p);
  }
  assert.deepEqual(Object.keys(doc.paths['/api/v1/static-hosts'] ?? {}).sort(), ['get', 'post']);
  assert.deepEqual(Object.keys(doc.paths['/api/v1/static-hosts/{name}'] ?? {}).sort(), ['delete', 'parameters']);
  const hostCreate = doc.components.schemas.StaticHostCreate;
  assert.deepEqual(hostCreate?.required, ['provider', 'name', 'labels']);
  assert.ok(hostCreate?.properties['connection-port'] && hostCreate.properties['max-parallel-jobs'] && hostCreate.properties['host-key']);
  assert.ok(doc.components.schemas.StaticHost?.properties.registered);
  assert.ok(doc.components.schemas.RuntimeStaticHost?.properties.added_by);
  assert.deepEqual(Object.keys(doc.paths['/api/v1/leases/{id}'] ?? {}).sort(), ['delete', 'get', 'parameters', 'patch']);
  const create = doc.components.schemas.LeaseCreate;
  assert.ok(create);
  assert.deepEqual(create.required, ['labels']);
  assert.equal(create.properties.ttl?.maximum, 7200);
  assert.equal(create.properties.labels?.additionalProperties?.maximum, 3);
  assert.ok(doc.components.schemas.Lease?.properties.nodes);
  assert.deepEqual((await http(`${w.url}/openapi.json`)).json(), doc);
});

test('webapp.leases in nodepool.yaml sets the lease limits the server validates with and documents', async () => {
  const w = await bareWeb((env) => `${fakeConfig(env)}
webapp:
  leases:
    max-ttl: 5400
    max-nodes-per-lease: 2
`);
  cleanups.push(() => w.close());
  assert.equal(w.web.limits.maxTtl, 5400);
  assert.equal(w.web.limits.maxNodesPerLease, 2);
  assert.equal(w.web.limits.minTtl, 60, 'keys not set keep their defaults');
  const doc = (await http(`${w.url}/api/v1/openapi.json`)).json() as {
    components: { schemas: Record<string, { properties: Record<string, { maximum?: number; additionalProperties?: { maximum?: number } }> }> };
  };
  assert.equal(doc.components.schemas.LeaseCreate?.properties.ttl?.maximum, 5400);
  assert.equal(doc.components.schemas.LeaseCreate?.properties.labels?.additionalProperties?.maximum, 2);
});
