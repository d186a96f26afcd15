// The simulator speaks the real OpenStack APIs: Debian's `openstack` CLI (python3-openstackclient,
// keystoneauth1, openstacksdk, novaclient) drives it through scripts/openstack-sim.sh, with a
// clouds.yaml as an operator would write it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const CLI = '/usr/bin/openstack';
const skip = !existsSync(CLI) && 'python3-openstackclient is not installed (scripts/install-deps.sh)';

let dir = '';
let base = '';

before(() => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'np-oscli-'));
  const r = spawnSync('bash', [join(ROOT, 'scripts/openstack-sim.sh'), 'start', dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  base = r.stdout.trim().replace(/\/identity\/v3$/, '');
});

after(() => {
  if (skip) return;
  spawnSync('bash', [join(ROOT, 'scripts/openstack-sim.sh'), 'stop', dir]);
  rmSync(dir, { recursive: true, force: true });
});

async function os(args: string[], cloud = 'sim'): Promise<unknown> {
  // commands that print nothing (delete) take no --format
  const json = args[1] !== 'delete';
  const { stdout } = await run(CLI, json ? [...args, '-f', 'json'] : args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, OS_CLIENT_CONFIG_FILE: join(dir, 'clouds.yaml'), OS_CLOUD: cloud },
    timeout: 60_000,
  });
  return json ? JSON.parse(stdout) as unknown : stdout; // `--wait` deletes print `Progress: 100`
}

async function osFails(args: string[]): Promise<string> {
  try {
    await run(CLI, args, {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, OS_CLIENT_CONFIG_FILE: join(dir, 'clouds.yaml'), OS_CLOUD: 'sim' },
      timeout: 60_000,
    });
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err);
  }
  throw new Error(`openstack ${args.join(' ')} succeeded`);
}

async function admin(method: string, path: string, body?: unknown): Promise<void> {
  const r = await fetch(`${base}${path}`, {
    method, headers: { 'Content-Type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  assert.ok(r.status < 300, `${method} ${path}: ${r.status}`);
}

test('token issue, with user and project domains by name and in a second domain', { skip }, async () => {
  const t = await os(['token', 'issue']) as Record<string, string>;
  assert.match(t.id ?? '', /^gAAAAA/);
  assert.match(t.project_id ?? '', /^[0-9a-f]{32}$/);
  assert.match(t.expires ?? '', /^\d{4}-\d\d-\d\dT/);
  const t2 = await os(['token', 'issue'], 'sim-example') as Record<string, string>;
  assert.notEqual(t2.project_id, t.project_id);
});

test('network list', { skip }, async () => {
  const nets = await os(['network', 'list']) as { Name: string; Subnets: string | string[] }[];
  assert.deepEqual(nets.map((n) => n.Name).sort(), ['private', 'public']);
});

test('server create --wait, list, show with properties, delete --wait', { skip }, async () => {
  const s = await os(['server', 'create', '--image', 'cirros-0.6.2-x86_64-disk', '--flavor', 'm1.small', '--network', 'private',
    '--property', 'nodepool_provider_name=cli', '--wait', 'cli-server']) as Record<string, unknown>;
  assert.equal(s.status, 'ACTIVE');
  assert.match(JSON.stringify(s.addresses), /10\.1\.0\.\d+/);
  const list = await os(['server', 'list']) as { Name: string; Status: string; Flavor: string; Image: string }[];
  assert.deepEqual(list.map((x) => [x.Name, x.Status, x.Flavor, x.Image]), [['cli-server', 'ACTIVE', 'm1.small', 'cirros-0.6.2-x86_64-disk']]);
  const shown = await os(['server', 'show', 'cli-server']) as { properties: unknown };
  assert.match(JSON.stringify(shown.properties), /nodepool_provider_name/);
  await os(['server', 'delete', '--wait', 'cli-server']);
  assert.deepEqual(await os(['server', 'list']), []);
});

test('image create --file, list, delete', { skip }, async () => {
  const file = join(dir, 'disk.qcow2');
  writeFileSync(file, Buffer.alloc(1024 * 1024 + 7, 0x5a));
  const created = await os(['image', 'create', '--file', file, '--disk-format', 'qcow2', '--private',
    '--property', 'nodepool_build_id=0000000001', 'cli-image']) as Record<string, unknown>;
  assert.equal(created.name, 'cli-image');
  const shown = await os(['image', 'show', 'cli-image']) as Record<string, unknown>;
  assert.equal(shown.status, 'active');
  assert.equal(shown.size, 1024 * 1024 + 7);
  assert.equal(shown.visibility, 'private');
  assert.match(JSON.stringify(shown.properties), /nodepool_build_id/);
  const list = await os(['image', 'list']) as { Name: string; Status: string }[];
  assert.deepEqual(list.map((i) => i.Name).sort(), ['cirros-0.6.2-x86_64-disk', 'cli-image']);
  await os(['image', 'delete', 'cli-image']);
  assert.deepEqual((await os(['image', 'list']) as { Name: string }[]).map((i) => i.Name), ['cirros-0.6.2-x86_64-disk']);
});

test('injected faults reach the CLI as the real services would report them', { skip }, async () => {
  await admin('POST', '/_sim/faults', { quotaExceeded: true });
  try {
    const msg = await osFails(['server', 'create', '--image', 'cirros-0.6.2-x86_64-disk', '--flavor', 'm1.tiny',
      '--network', 'private', 'over-quota']);
    assert.match(msg, /Quota exceeded for instances/);
    assert.match(msg, /HTTP 403/);
  } finally {
    await admin('DELETE', '/_sim/faults');
  }
  await admin('POST', '/_sim/faults', { rules: [{ service: 'network', method: 'GET', path: 'networks', status: 500 }] });
  try {
    assert.match(await osFails(['network', 'list']), /500|Internal Server Error|Injected fault/);
  } finally {
    await admin('DELETE', '/_sim/faults');
  }
  // wrong credentials
  const clouds = readFileSync(join(dir, 'clouds.yaml'), 'utf8');
  writeFileSync(join(dir, 'clouds.yaml'), clouds.replace('password: secret-demo-pw', 'password: wrong'));
  try {
    assert.match(await osFails(['server', 'list']), /The request you have made requires authentication\. \(HTTP 401\)/);
  } finally {
    writeFileSync(join(dir, 'clouds.yaml'), clouds);
  }
});

test('HTTPS with a private CA (openstack-sim.sh start-tls): cacert in clouds.yaml, --os-cacert, refused without; application credentials', { skip }, async () => {
  const tlsDir = mkdtempSync(join(tmpdir(), 'np-oscli-tls-'));
  try {
    const r = spawnSync('bash', [join(ROOT, 'scripts/openstack-sim.sh'), 'start-tls', tlsDir], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const url = r.stdout.trim();
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+\/identity\/v3$/);
    const ca = join(tlsDir, 'tls', 'ca.pem');
    const clouds = readFileSync(join(tlsDir, 'clouds.yaml'), 'utf8');
    assert.match(clouds, new RegExp(`cacert: ${ca.replace(/[.]/g, '\\.')}`));
    writeFileSync(join(tlsDir, 'clouds-nocacert.yaml'), clouds.replace(/^ +cacert: .*\n/gm, ''));
    const cli = (args: string[], cloudsFile: string, cloud: string | null = 'sim') => run(CLI, args, {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tlsDir, OS_CLIENT_CONFIG_FILE: join(tlsDir, cloudsFile),
        ...(cloud ? { OS_CLOUD: cloud } : {}),
      },
      timeout: 60_000,
    });
    // clouds.yaml's cacert, as the driver reads it, is honoured by openstacksdk too
    const t = JSON.parse((await cli(['token', 'issue', '-f', 'json'], 'clouds.yaml')).stdout) as Record<string, string>;
    assert.match(t.project_id ?? '', /^[0-9a-f]{32}$/);
    // without it the certificate is refused; --os-cacert gives it back
    const refused = await cli(['token', 'issue', '-f', 'json'], 'clouds-nocacert.yaml').then(() => '', (err: { stderr?: string }) => String(err.stderr));
    assert.match(refused, /CERTIFICATE_VERIFY_FAILED/);
    const listed = JSON.parse((await cli(['--os-cacert', ca, 'server', 'list', '-f', 'json'], 'clouds-nocacert.yaml')).stdout) as unknown[];
    assert.deepEqual(listed, []);
    // an application credential made by the real CLI through the simulator's Keystone, then used by it
    const ac = JSON.parse((await cli(['application', 'credential', 'create', 'nodepool', '-f', 'json'], 'clouds.yaml')).stdout) as Record<string, string>;
    assert.match(ac.id ?? '', /^[0-9a-f]{32}$/);
    assert.ok((ac.secret ?? '').length > 20);
    const viaAppCred = await cli(['--os-auth-type', 'v3applicationcredential', '--os-auth-url', url, '--os-identity-api-version', '3',
      '--os-application-credential-id', ac.id ?? '', `--os-application-credential-secret=${ac.secret ?? ''}`, '--os-cacert', ca,
      'token', 'issue', '-f', 'json'], 'clouds-nocacert.yaml', null);
    assert.equal((JSON.parse(viaAppCred.stdout) as Record<string, string>).project_id, t.project_id, 'the credential\'s project');
  } finally {
    spawnSync('bash', [join(ROOT, 'scripts/openstack-sim.sh'), 'stop', tlsDir]);
    rmSync(tlsDir, { recursive: true, force: true });
  }
});
