// clouds.yaml search and parsing, structural provider comparison, YAML 1.1 the PyYAML way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cloudsSearchPath, loadCloudsYaml, loadConfig, providersEqual, type Provider,
} from '../src/config/index.js';
import { fixture, isolatedEnv, tempDir } from './config-helpers.js';

const cloud = (name: string, extra = '') => `clouds:\n  ${name}:\n    auth:\n      auth_url: https://${name}\n${extra}`;

test('clouds.yaml search order: OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack, /etc/openstack', async () => {
  const home = tempDir({ '.config/openstack/clouds.yaml': cloud('from-home') });
  const explicit = tempDir({ 'my-clouds.yaml': cloud('from-env') });
  const cwd = tempDir({ 'clouds.yaml': cloud('from-cwd') });
  const env = { HOME: home, OS_CLIENT_CONFIG_FILE: join(explicit, 'my-clouds.yaml') };
  const previous = process.cwd();
  process.chdir(cwd);
  try {
    assert.deepEqual(cloudsSearchPath(env), [
      join(explicit, 'my-clouds.yaml'),
      join(cwd, 'clouds.yaml'),
      join(home, '.config', 'openstack', 'clouds.yaml'),
      '/etc/openstack/clouds.yaml',
    ]);
    const a = await loadCloudsYaml({ env });
    assert.equal(a.file, join(explicit, 'my-clouds.yaml'));
    assert.deepEqual([...a.clouds.keys()], ['from-env']);
    const b = await loadCloudsYaml({ env: { HOME: home } });
    assert.equal(b.file, join(cwd, 'clouds.yaml'));
    assert.deepEqual([...b.clouds.keys()], ['from-cwd']);
    // a variable naming a missing file is skipped, as os-client-config does
    const c = await loadCloudsYaml({ env: { HOME: home, OS_CLIENT_CONFIG_FILE: join(explicit, 'gone.yaml') } });
    assert.equal(c.file, join(cwd, 'clouds.yaml'));
  } finally {
    process.chdir(previous);
  }
  const d = await loadCloudsYaml({ env: { HOME: home } });
  assert.equal(d.file, join(home, '.config', 'openstack', 'clouds.yaml'));
  assert.deepEqual([...d.clouds.keys()], ['from-home']);
});

test('no clouds.yaml anywhere: file null, no clouds', async () => {
  const empty = tempDir({});
  const previous = process.cwd();
  process.chdir(empty);
  try {
    const r = await loadCloudsYaml({ env: { HOME: empty } });
    if (r.file !== '/etc/openstack/clouds.yaml') {
      assert.equal(r.file, null);
      assert.equal(r.clouds.size, 0);
    }
  } finally {
    process.chdir(previous);
  }
});

test('clouds.yaml entries: auth, regions, image_format (qcow2 by default), raw entry', async () => {
  const { file, clouds } = await loadCloudsYaml({ file: fixture('clouds.yaml') });
  assert.equal(file, fixture('clouds.yaml'));
  const city = clouds.get('citycloud');
  assert.ok(city);
  assert.deepEqual({ ...city, raw: undefined }, {
    name: 'citycloud',
    authUrl: 'https://kna1.citycloud.com:5000/v3/',
    username: 'nodepool',
    password: 's3cr3t-Passw0rd',
    projectName: 'zuul-ci',
    projectId: '7d6b1f2c',
    userDomainName: 'Default',
    projectDomainName: 'Default',
    regionName: 'Kna1',
    regions: ['Kna1', 'Lon1'],
    imageFormat: 'raw',
    raw: undefined,
    file: fixture('clouds.yaml'),
  });
  assert.deepEqual(city.raw.regions, ['Kna1', { name: 'Lon1', values: { networks: [{ name: 'ext-net' }] } }]);
  const fake = clouds.get('fake');
  assert.equal(fake?.imageFormat, 'qcow2');
  assert.equal(fake?.regionName, 'fake-region');
  assert.deepEqual(fake?.regions, []);
});

test('numeric credentials are read as text', async () => {
  const dir = tempDir({ 'c.yaml': 'clouds:\n  c:\n    auth:\n      password: 123456\n      project_id: 42\n' });
  const { clouds } = await loadCloudsYaml({ file: join(dir, 'c.yaml') });
  assert.equal(clouds.get('c')?.password, '123456');
  assert.equal(clouds.get('c')?.projectId, '42');
});

test('the OpenStack provider reads its cloud through OS_CLIENT_CONFIG_FILE', async () => {
  const dir = tempDir({
    'n.yaml': 'providers:\n  - name: os\n    cloud: vhd-cloud\n    diskimages: [{name: img}]\ndiskimages: [{name: img}]\n',
    'clouds.yaml': cloud('vhd-cloud', '    image_format: vhd\n'),
  });
  const c = await loadConfig(join(dir, 'n.yaml'), isolatedEnvWith({ OS_CLIENT_CONFIG_FILE: join(dir, 'clouds.yaml') }));
  const os = c.providers.get('os');
  assert.ok(os?.driver === 'openstack');
  assert.equal(os.imageFormat, 'vhd');
  assert.deepEqual(c.diskimages.get('img')?.formats, ['vhd'], 'the image is built in the format the cloud takes');
  assert.equal(c.cloudsFile, join(dir, 'clouds.yaml'));
});

function isolatedEnvWith(extra: NodeJS.ProcessEnv): { env: NodeJS.ProcessEnv } {
  return { env: isolatedEnv(extra) };
}

async function providersOf(file: string, cloudsFile = fixture('clouds.yaml')): Promise<Map<string, Provider>> {
  return (await loadConfig(file, { cloudsFile, env: isolatedEnv() })).providers;
}

function get(map: Map<string, Provider>, name: string): Provider {
  const p = map.get(name);
  assert.ok(p, name);
  return p;
}

test('providersEqual: reloading an unchanged file gives equal providers; any change does not', async () => {
  const a = await providersOf(fixture('nodepool-3x.yaml'));
  const b = await providersOf(fixture('nodepool-3x.yaml'));
  for (const name of a.keys()) assert.ok(providersEqual(get(a, name), get(b, name)), name);
  assert.ok(!providersEqual(get(a, 'citycloud-kna1'), get(a, 'fake-provider')));

  const original = readFileSync(fixture('nodepool-3x.yaml'), 'utf8');
  const dir = tempDir({});
  const variant = (from: string, to: string) => {
    assert.ok(original.includes(from), from);
    const file = join(dir, `v${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, original.replace(from, to));
    return file;
  };
  // a pool's max-servers changed: only that provider differs
  const c = await providersOf(variant('max-servers: 96', 'max-servers: 97'));
  assert.ok(!providersEqual(get(a, 'fake-provider'), get(c, 'fake-provider')));
  assert.ok(providersEqual(get(a, 'citycloud-kna1'), get(c, 'citycloud-kna1')));
  assert.ok(providersEqual(get(a, 'static-rack'), get(c, 'static-rack')));
  // a static node's port changed
  const d = await providersOf(variant('connection-port: 22022', 'connection-port: 22023'));
  assert.ok(!providersEqual(get(a, 'static-rack'), get(d, 'static-rack')));
  // a node attribute changed (nested mapping)
  const e = await providersOf(variant('executor-zone: kna1', 'executor-zone: kna2'));
  assert.ok(!providersEqual(get(a, 'citycloud-kna1'), get(e, 'citycloud-kna1')));
  // only comments and key order changed
  const f = await providersOf(variant('    cloud: citycloud\n    region-name: Kna1\n', '    region-name: Kna1   # moved\n    cloud: citycloud\n'));
  assert.ok(providersEqual(get(a, 'citycloud-kna1'), get(f, 'citycloud-kna1')));
});

test('providersEqual: a changed clouds.yaml entry changes the provider', async () => {
  const dir = tempDir({
    'n.yaml': 'providers:\n  - name: os\n    cloud: c\n',
    'c1.yaml': cloud('c'),
    'c2.yaml': cloud('c', '    region_name: other\n'),
  });
  const a = await providersOf(join(dir, 'n.yaml'), join(dir, 'c1.yaml'));
  const b = await providersOf(join(dir, 'n.yaml'), join(dir, 'c1.yaml'));
  const c = await providersOf(join(dir, 'n.yaml'), join(dir, 'c2.yaml'));
  assert.ok(providersEqual(get(a, 'os'), get(b, 'os')));
  assert.ok(!providersEqual(get(a, 'os'), get(c, 'os')));
});

test('YAML 1.1 as PyYAML reads it: yes/on are booleans, y/n are strings, 010 is octal', async () => {
  const dir = tempDir({
    'n.yaml': [
      'labels: [{name: y}, {name: n}]',
      'build-log-retention: 010',
      'diskimages:',
      '  - name: d',
      '    pause: on',
      '    env-vars: {ANSWER: n, OTHER: "yes"}',
      '',
    ].join('\n'),
  });
  const c = await loadConfig(join(dir, 'n.yaml'), { env: isolatedEnv() });
  assert.deepEqual([...c.labels.keys()], ['y', 'n']);
  assert.equal(c.buildLogRetention, 8);
  assert.equal(c.diskimages.get('d')?.pause, true);
  assert.deepEqual(c.diskimages.get('d')?.envVars, { ANSWER: 'n', OTHER: 'yes' });
});
