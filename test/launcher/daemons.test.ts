// Both daemons as processes: -f runs in the foreground with a pid file; SIGINT (and SIGTERM for
// the launcher) stops them gracefully, removing the pid file and their ZooKeeper registrations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connectZk, fakeConfig, testEnv, waitFor } from '../helpers/harness.js';

function run(bin: string, args: string[]) {
  const p = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODEPOOL_LOG_LEVEL: 'warn' } });
  let stderr = '';
  p.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
  /** The exit code, or a failure naming the hang (the process is killed) after `ms`. */
  const exit = async (ms = 30_000): Promise<number | null> => {
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        p.kill('SIGKILL');
        reject(new Error(`${bin} did not exit within ${ms / 1000} s\n${stderr}`));
      }, ms);
    });
    try {
      return await Promise.race([exited, hung]);
    } finally {
      clearTimeout(timer);
    }
  };
  return { p, exit, stderr: () => stderr };
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`nodepool-launcher -f stops on ${signal}: pid file removed, registration gone`, async () => {
    const env = testEnv();
    const zk = await connectZk(env);
    try {
      const cfg = env.write('nodepool.yaml', fakeConfig(env, { labels: [{ name: 'fake-label', minReady: 1 }] }));
      const pidfile = `${env.dir}/launcher.pid`;
      const d = run('packages/launcher/bin/nodepool-launcher.js', ['-f', '-c', cfg, '-p', pidfile, '--no-webapp']);
      await waitFor('registered and serving', async () => (await zk.getRegisteredLaunchers()).length === 1
        && (await zk.getNodes()).some((n) => n.state === 'ready'), 20_000).catch((e: Error) => { throw new Error(`${e.message}\n${d.stderr()}`); });
      assert.ok(existsSync(pidfile));
      d.p.kill(signal);
      assert.equal(await d.exit(), 0, d.stderr());
      assert.ok(!existsSync(pidfile), 'pid file removed');
      assert.deepEqual(await zk.getRegisteredLaunchers(), []);
    } finally {
      await zk.close();
      env.cleanup();
    }
  });
}

test('nodepool-builder -f --fake stops on SIGINT with its pid file removed', async () => {
  const env = testEnv();
  try {
    const cfg = env.write('nodepool.yaml', `${env.zkYaml}images-dir: ${env.dir}/images\nbuild-log-dir: ${env.dir}/logs\n`);
    const pidfile = `${env.dir}/builder.pid`;
    const d = run('packages/builder/bin/nodepool-builder.js', ['-f', '--fake', '-c', cfg, '-p', pidfile]);
    await waitFor('pid file', () => existsSync(pidfile) && existsSync(`${env.dir}/images/builder_id.txt`), 20_000)
      .catch((e: Error) => { throw new Error(`${e.message}\n${d.stderr()}`); });
    d.p.kill('SIGINT');
    assert.equal(await d.exit(), 0, d.stderr());
    assert.ok(!existsSync(pidfile));
  } finally {
    env.cleanup();
  }
});

test('daemons reject a bad flag with usage and exit 2', async () => {
  for (const bin of ['packages/launcher/bin/nodepool-launcher.js', 'packages/builder/bin/nodepool-builder.js']) {
    const d = run(bin, ['--no-such-flag']);
    assert.equal(await d.exit(), 2);
    assert.match(d.stderr(), /^usage: nodepool-(launcher|builder)/);
  }
});
