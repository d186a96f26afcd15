// `nodepool token create|list|revoke` in-process through the CLI's main(): the token alone on
// stdout, notes on stderr, argparse-like errors, and tokens the launcher's web app accepts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '@nodepool-ts/cli';
import { Launcher } from '@nodepool-ts/launcher';
import { fakeConfig, testEnv } from '../helpers/harness.js';

const env = testEnv();
const config = env.write('nodepool.yaml', `${fakeConfig(env)}\nstate-dir: ${env.dir}/state\n`);
after(() => env.cleanup());

async function np(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['-c', config, ...argv], { stdout: (t) => { out += t; }, stderr: (t) => { err += t; }, now: () => 1_800_000_000 });
  return { code, out, err };
}

test('token create prints only the token on stdout; list, revoke, --json', async () => {
  const c = await np('token', 'create', '--name', 'alice', '--expires', '30d', '--max-nodes', '3');
  assert.equal(c.code, 0, c.err);
  assert.match(c.out, /^np_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\n$/);
  assert.match(c.err, /Token alice \(id [0-9a-f]{12}\) created; expires 2027-02-14 08:00:00 UTC/);
  const token = c.out.trim();

  const l = await np('token', 'list');
  assert.equal(l.code, 0);
  const lines = l.out.trimEnd().split('\n');
  assert.equal(lines[1], '| ID           | Name  | State  | Created                 | Expires                 | Last Used | Max Nodes | Scopes |');
  assert.match(lines[3] ?? '', /^\| [0-9a-f]{12} \| alice \| active \| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \| 2027-02-14 08:00:00 UTC \| +\| 3 +\| leases \|$/);
  assert.ok(!l.out.includes(token.slice(16)), 'list never shows the secret');

  const j = await np('token', 'create', '--name', 'ci', '--json');
  const created = JSON.parse(j.out) as { name: string; token: string; expires_at: number | null };
  assert.equal(created.name, 'ci');
  assert.equal(created.expires_at, null);
  assert.match(created.token, /^np_/);

  // the launcher accepts it
  const launcher = new Launcher({ configFile: config, hostname: 'tok', watchIntervalMs: 0, webapp: { port: 0 } });
  await launcher.start();
  try {
    const r = await fetch(`${launcher.webApp?.url}/api/v1/leases/none`, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } });
    assert.equal(r.status, 404, 'authenticated; the lease does not exist');
    const rv = await np('token', 'revoke', 'alice');
    assert.equal(rv.out, `Token alice (id ${token.slice(3, 15)}) revoked\n`);
    const r2 = await fetch(`${launcher.webApp?.url}/api/v1/leases/none`, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } });
    assert.equal(r2.status, 403);
  } finally {
    await launcher.stop();
  }
  const js = JSON.parse((await np('token', 'list', '--json')).out) as { name: string; state: string; scopes: string[] }[];
  assert.deepEqual(js.map((t) => [t.name, t.state, t.scopes]), [['alice', 'revoked', ['leases']], ['ci', 'active', ['leases']]]);
});

test('token create --scope: repeatable, shown by list; an unknown scope is a usage error naming it', async () => {
  const ops = await np('token', 'create', '--name', 'ops', '--scope', 'hosts');
  assert.equal(ops.code, 0, ops.err);
  assert.match(ops.err, /Token ops \(id [0-9a-f]{12}\) created; expires never; scopes hosts\./);
  const both = await np('token', 'create', '--name', 'both', '--scope', 'hosts', '--scope=leases', '--json');
  assert.equal(both.code, 0, both.err);
  assert.deepEqual((JSON.parse(both.out) as { scopes: string[] }).scopes, ['leases', 'hosts']);
  const bad = await np('token', 'create', '--name', 'x2', '--scope', 'leases', '--scope', 'admin');
  assert.equal(bad.code, 2);
  assert.match(bad.err, /argument --scope: invalid choice: 'admin' \(choose from 'leases', 'hosts'\)/);
  const notCreate = await np('token', 'list', '--scope', 'hosts');
  assert.equal(notCreate.code, 2);
  const l = await np('token', 'list');
  assert.match(l.out, /\| Max Nodes \| Scopes +\|\n/);
  assert.match(l.out, /\| ops +\| active +\| .* \| hosts +\|\n/);
  assert.match(l.out, /\| both +\| active +\| .* \| leases,hosts \|\n/);
  const js = JSON.parse((await np('token', 'list', '--json')).out) as { name: string; scopes: string[] }[];
  assert.deepEqual(js.filter((t) => t.name === 'ops' || t.name === 'both').map((t) => [t.name, t.scopes]),
    [['ops', ['hosts']], ['both', ['leases', 'hosts']]]);
  assert.ok(!js.some((t) => t.name === 'x2'), 'nothing created on a usage error');
});

test('token errors: duplicate name, bad expiry, missing --name, unknown sub-command, unknown token', async () => {
  await np('token', 'create', '--name', 'dup');
  const dup = await np('token', 'create', '--name', 'dup');
  assert.equal(dup.code, 1);
  assert.match(dup.err, /a token named dup already exists/);
  const bad = await np('token', 'create', '--name', 'x', '--expires', 'tomorrow-ish');
  assert.equal(bad.code, 1);
  assert.match(bad.err, /--expires tomorrow-ish: expected a duration/);
  const noName = await np('token', 'create');
  assert.equal(noName.code, 2);
  assert.match(noName.err, /the following arguments are required: --name/);
  const what = await np('token', 'frobnicate');
  assert.equal(what.code, 2);
  assert.match(what.err, /invalid choice: 'frobnicate'/);
  const none = await np('token', 'revoke', 'nobody');
  assert.equal(none.code, 1);
  assert.match(none.err, /no token named nobody/);
  const help = await np('token', '--help');
  assert.equal(help.code, 0);
  assert.match(help.out, /^usage: nodepool token \[-h\] \{create,list,revoke\}/);
  const main_ = await np('--help');
  assert.match(main_.out, /\n {4}token {15}create, list and revoke web API tokens\n/);
});
