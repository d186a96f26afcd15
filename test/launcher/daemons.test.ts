// Both daemons as processes: -f runs in the foreground with a pid file; SIGINT (and SIGTERM for
// the launcher) stops them gracefully, removing the pid file and their ZooKeeper registrations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { ZooKeeper, paths } from '@nodepool-ts/core/zk';
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

test('both daemons stop cleanly on SIGTERM while ZooKeeper is gone: exit 0, pid files removed (not ended by the grace timer)', async () => {
  const env = testEnv();
  const zkDir = `${env.dir}/zk`;
  const hp = execFileSync('bash', ['scripts/zk.sh', 'start', zkDir], { encoding: 'utf8' }).trim();
  try {
    const zkYaml = `zookeeper-servers:\n  - host: 127.0.0.1\n    port: ${hp.split(':')[1] ?? ''}\n`;
    const cfg = env.write('nodepool.yaml', fakeConfig({ ...env, zkYaml }, { labels: [{ name: 'fake-label', minReady: 1 }] })
      + `images-dir: ${env.dir}/images\nbuild-log-dir: ${env.dir}/logs\n`);
    const launcher = run('packages/launcher/bin/nodepool-launcher.js', ['-f', '-c', cfg, '-p', `${env.dir}/l.pid`, '--no-webapp']);
    const builder = run('packages/builder/bin/nodepool-builder.js', ['-f', '--fake', '-c', cfg, '-p', `${env.dir}/b.pid`]);
    const zk = new ZooKeeper({ servers: [{ host: '127.0.0.1', port: Number(hp.split(':')[1]), chroot: null }] });
    await zk.connect();
    await waitFor('a ready node and the builder registered', async () => (await zk.getNodes()).some((n) => n.state === 'ready')
      && (await zk.getChildren(paths.componentsOf('builder'))).length === 1, 30_000)
      .catch((e: Error) => { throw new Error(`${e.message}\n${launcher.stderr()}\n${builder.stderr()}`); });
    await zk.close();
    execFileSync('bash', ['scripts/zk.sh', 'stop', zkDir]);
    launcher.p.kill('SIGTERM');
    builder.p.kill('SIGTERM');
    // (the grace timers exit 1 after 30 s / 60 s: a stop that waits for the server gets there)
    assert.equal(await launcher.exit(75_000), 0, launcher.stderr());
    assert.equal(await builder.exit(75_000), 0, builder.stderr());
    assert.match(launcher.stderr(), /ZooKeeper unreachable for 5 s while stopping/);
    assert.ok(!existsSync(`${env.dir}/l.pid`) && !existsSync(`${env.dir}/b.pid`), 'pid files removed');
  } finally {
    execFileSync('bash', ['scripts/zk.sh', 'stop', zkDir]);
    env.cleanup();
  }
});

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

test('nodepool-builder and nodepool-launcher as two processes on one in-memory fake provider: a diskimage label boots from the upload', async () => {
  // Nodepool's usual setup (and its own fake-provider fixtures): no state file, so each daemon
  // has its own in-memory fake cloud and the launcher never saw the builder's upload
  const env = testEnv();
  const zk = await connectZk(env);
  try {
    const cfg = env.write('nodepool.yaml', `${env.zkYaml}images-dir: ${env.dir}/images
build-log-dir: ${env.dir}/logs
labels:
  - name: dib-label
    min-ready: 1
diskimages:
  - name: fake-image
    elements: [debian-minimal, vm]
providers:
  - name: fake-provider
    cloud: fake
    rate: 0.0001
    diskimages:
      - name: fake-image
    pools:
      - name: main
        max-servers: 2
        labels:
          - name: dib-label
            diskimage: fake-image
            min-ram: 8192
`);
    const builder = run('packages/builder/bin/nodepool-builder.js', ['-f', '--fake', '-c', cfg, '-p', `${env.dir}/builder.pid`]);
    const launcher = run('packages/launcher/bin/nodepool-launcher.js', ['-f', '-c', cfg, '-p', `${env.dir}/launcher.pid`, '--no-webapp']);
    try {
      const upload = await waitFor('a ready upload', async () =>
        (await zk.getImageUploads('fake-image', '0000000001', 'fake-provider', ['ready']))[0], 40_000)
        .catch((e: Error) => { throw new Error(`${e.message}\n${builder.stderr()}`); });
      const node = await waitFor('a ready dib-label node', async () =>
        (await zk.getNodes()).find((n) => n.state === 'ready' && n.type.includes('dib-label')), 30_000)
        .catch((e: Error) => { throw new Error(`${e.message}\n${launcher.stderr()}`); });
      assert.equal(node.image_id, `/nodepool/images/fake-image/builds/0000000001/providers/fake-provider/images/${upload.id}`);
      assert.ok(!(await zk.getNodes()).some((n) => n.state === 'failed'), 'no failed launch');
      assert.doesNotMatch(launcher.stderr(), /could not be found/);
    } finally {
      builder.p.kill('SIGINT');
      launcher.p.kill('SIGINT');
      assert.equal(await builder.exit(), 0, builder.stderr());
      assert.equal(await launcher.exit(), 0, launcher.stderr());
    }
  } finally {
    await zk.close();
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

test("nodepool-launcher detached with a Python dictConfig -l: logs to its file handler's file, reopened after logrotate moves it", async () => {
  const env = testEnv();
  const zk = await connectZk(env);
  let pid = 0;
  try {
    const cfg = env.write('nodepool.yaml', fakeConfig(env, { labels: [{ name: 'fake-label', minReady: 1 }] }));
    const logFile = `${env.dir}/log/launcher.log`;
    const logconf = env.write('logging.yaml', [
      'version: 1',
      'handlers:',
      '  normal:',
      '    class: logging.handlers.WatchedFileHandler',
      `    filename: ${logFile}`,
      'loggers:',
      '  nodepool:',
      '    level: INFO',
      '    handlers: [normal]',
      'root:',
      '  level: WARNING',
      '  handlers: []',
      '',
    ].join('\n'));
    const pidfile = `${env.dir}/launcher.pid`;
    const out = spawnSync(process.execPath, ['packages/launcher/bin/nodepool-launcher.js', '-c', cfg, '-p', pidfile, '-l', logconf, '--no-webapp'],
      { encoding: 'utf8', env: { ...process.env, NODEPOOL_LOG_LEVEL: 'warn' } });
    assert.equal(out.status, 0, out.stderr);
    assert.match(out.stdout, new RegExp(`^nodepool-launcher running as pid \\d+, logging to ${logFile.replace(/[.]/g, '\\.')}\\n$`));
    await waitFor('pid file', () => existsSync(pidfile), 20_000);
    pid = Number(readFileSync(pidfile, 'utf8').trim());
    await waitFor('serving', async () => (await zk.getNodes()).some((n) => n.state === 'ready'), 20_000);
    const first = readFileSync(logFile, 'utf8');
    assert.match(first, /"name":"nodepool\.launcher"/);
    assert.match(first, /log config .*logging\.yaml: formatters are not applied/);
    // logrotate without copytruncate: the file is moved away and the daemon keeps its name
    renameSync(logFile, `${logFile}.1`);
    await waitFor('a new log file after the move', async () => {
      process.kill(pid, 'SIGUSR2');
      await new Promise((r) => setTimeout(r, 200));
      return existsSync(logFile) && readFileSync(logFile, 'utf8').includes('State dump (SIGUSR2)');
    }, 20_000);
    process.kill(pid, 'SIGTERM');
    await waitFor('stopped', () => !existsSync(pidfile), 30_000);
    pid = 0;
    assert.match(readFileSync(logFile, 'utf8'), /Received SIGTERM; stopping/);
  } finally {
    if (pid !== 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await zk.close();
    env.cleanup();
  }
});
