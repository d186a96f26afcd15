// docs/lease-api.md's curl walkthrough, executed as written: (1) against the demo configuration
// with a real `nodepool-launcher` process and the `nodepool` CLI for the token; (2) against a
// static pool of a real sshd, where "use the node" really logs in over SSH with the host keys the
// lease hands out, and the returned host is registered again.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Launcher } from '@nodepool-ts/launcher';
import { connectZk, testEnv, waitFor, zkHostPort, type TestEnv } from '../helpers/harness.js';
import { currentUser, freePort, makeClientKey, startSshd } from '../../packages/drivers/static/test/sshd.js';
import { staticYaml } from '../static/helpers.js';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DOC = readFileSync(join(ROOT, 'docs/lease-api.md'), 'utf8');

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** The ```bash block after `<!-- walkthrough:<name> -->`. */
function block(name: string): string {
  const m = new RegExp(`<!-- walkthrough:${name} -->\\n\`\`\`bash\\n([\\s\\S]*?)\\n\`\`\``).exec(DOC);
  assert.ok(m?.[1], `docs/lease-api.md has the ${name} block`);
  return m[1];
}

/** Run blocks in one bash, from a scratch dir, with the repository's paths made absolute. */
async function walk(env: TestEnv, names: string[], vars: Record<string, string>, subst: [string, string][] = []): Promise<string> {
  let script = 'set -euo pipefail\n' + names.map(block).join('\n');
  script = script.replaceAll('node packages/', `node ${ROOT}/packages/`);
  for (const [from, to] of subst) script = script.replaceAll(from, to);
  const cwd = join(env.dir, 'walk');
  mkdirSync(cwd, { recursive: true });
  try {
    const { stdout } = await run('bash', ['-c', script], { cwd, env: { ...process.env, ...vars }, timeout: 120_000 });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    assert.fail(`walkthrough failed: ${e.message}\nstdout:\n${e.stdout ?? ''}\nstderr:\n${e.stderr ?? ''}`);
  }
}

function secureConf(env: TestEnv, stateDir: string): void {
  const { host, port } = zkHostPort();
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(join(stateDir, 'secure.conf'), `zookeeper-servers:\n  - host: ${host}\n    port: ${port}\n    chroot: ${env.chroot}\n`);
}

test('the curl walkthrough works against the demo configuration and a real nodepool-launcher', async () => {
  const env = testEnv();
  const stateDir = join(env.dir, 'state');
  secureConf(env, stateDir);
  const port = await freePort();
  const demo = readFileSync(join(ROOT, 'etc/demo/nodepool.yaml'), 'utf8').replace('port: 8005', `port: ${port}`);
  assert.ok(demo.includes(`port: ${port}`));
  const config = env.write('demo.yaml', demo);
  const child = spawn(process.execPath, [join(ROOT, 'packages/launcher/bin/nodepool-launcher.js'), '-f', '-c', config,
    '-s', join(stateDir, 'secure.conf'), '-p', join(stateDir, 'launcher.pid')], {
    cwd: ROOT, stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, NODEPOOL_STATE_DIR: stateDir, NODEPOOL_LOG_LEVEL: 'warn' },
  });
  cleanups.push(async () => {
    if (child.exitCode === null) {
      child.kill('SIGINT');
      await new Promise((r) => child.once('exit', r));
    }
    env.cleanup();
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor('launcher web app', async () => (await fetch(`${url}/ready`).catch(() => null))?.status === 200, 30_000, 200);
  const out = await walk(env, ['lease', 'return', 'errors'], { NP: url, NODEPOOL_STATE_DIR: stateDir },
    [['etc/demo/nodepool.yaml', config]]);
  assert.match(out, /"state": "active"/);
  assert.match(out, /node at zuul@198\.18\.\d+\.\d+ port 22/);
  assert.match(out, /\| \d{10} \| in-use \| locked \|/);
  assert.match(out, /"state": "returned"/);
  assert.match(out, /"code":"missing_token"/);
  assert.match(out, /"code":"unknown_label"/);
  assert.match(out, /Token alice \(id [0-9a-f]{12}\) revoked/);
  const zk = await connectZk(env);
  cleanups.push(() => zk.close());
  // the returned node was deleted by the launcher, min-ready made up for it
  await waitFor('no used nodes left', async () => (await zk.getNodes()).every((n) => n.state === 'ready'), 20_000, 200);
});

test('with a static pool the leased address really logs in over SSH, and the host comes back', async () => {
  const key = await makeClientKey();
  const sshd = await startSshd('127.0.0.91', key);
  cleanups.push(async () => { await sshd.destroy(); key.cleanup(); });
  const env = testEnv();
  const stateDir = join(env.dir, 'state');
  secureConf(env, stateDir);
  const config = env.write('static.yaml', `state-dir: ${stateDir}\n${staticYaml(env, {
    labels: [{ name: 'fake-label' }],
    pools: [{ name: 'main', hosts: [{ sshd, labels: ['fake-label'] }] }],
  })}`);
  const zk = await connectZk(env);
  const launcher = new Launcher({ configFile: config, hostname: 'walk', watchIntervalMs: 0, webapp: { port: 0 } });
  await launcher.start();
  cleanups.push(async () => { await launcher.stop(); await zk.close(); env.cleanup(); });
  const ready = () => zk.getNodes().then((ns) => ns.filter((n) => n.state === 'ready' && n.hostname === sshd.address));
  await waitFor('static host registered', async () => (await ready()).length === 1, 20_000, 100);
  const first = (await ready())[0]?.id;
  const out = await walk(env, ['lease', 'use', 'return'], {
    NP: launcher.webApp?.url ?? '', NODEPOOL_STATE_DIR: stateDir,
    SSH_OPTS: `-i ${key.privateKey} -o BatchMode=yes -o ConnectTimeout=10 -o IdentitiesOnly=yes`,
  }, [['etc/demo/nodepool.yaml', config]]);
  assert.match(out, new RegExp(`node at ${currentUser()}@${sshd.address.replaceAll('.', '\\.')} port ${sshd.port}`));
  const { stdout: host } = await run('hostname');
  assert.ok(out.includes(host.trim()), 'ssh ran `hostname` on the leased node');
  assert.match(out, /"state": "returned"/);
  // used → deleted → registered again (a new node for the same host)
  await waitFor('static host registered again', async () => {
    const r = await ready();
    return r.length === 1 && r[0]?.id !== first;
  }, 20_000, 100);

  // the static-host block: a second sshd added over HTTP with a `hosts` token, listed, removed
  const other = await startSshd('127.0.0.92', key);
  cleanups.push(() => other.destroy());
  const hosts = await walk(env, ['lease', 'return', 'hosts'], {
    NP: launcher.webApp?.url ?? '', NODEPOOL_STATE_DIR: stateDir,
  }, [['etc/demo/nodepool.yaml', config], ['--name alice', '--name bob'], ['192.0.2.10', other.address],
    ['"username": "zuul"', `"username": "${currentUser()}"`], ['"connection-port": 22', `"connection-port": ${other.port}`]]);
  assert.match(hosts, new RegExp(`"added_by":"ops"`));
  assert.ok(hosts.includes(`{"name":"${other.address}","source":"runtime","registered":2,"ready":2}`), hosts);
  assert.ok(hosts.includes(`{"name":"${other.address}","source":"runtime"}`), hosts);
  await waitFor('added host deregistered', async () => (await zk.getNodes()).every((n) => n.hostname !== other.address), 20_000, 100);
});
