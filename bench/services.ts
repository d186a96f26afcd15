// The ZooKeeper a benchmark talks to: $NODEPOOL_TEST_ZK when set, else a private one started
// with scripts/zk.sh in the benchmark's work dir (stop() stops only what was started here).
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');

export interface BenchZooKeeper {
  host: string;
  port: string;
  stop(): void;
}

export function benchZooKeeper(work: string): BenchZooKeeper {
  let addr = process.env.NODEPOOL_TEST_ZK ?? '';
  let started = false;
  if (!addr) {
    const r = spawnSync('bash', [join(root, 'scripts/zk.sh'), 'start', join(work, 'zk')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`could not start ZooKeeper: ${r.stderr}`);
    addr = r.stdout.trim();
    started = true;
  }
  const [host = '127.0.0.1', port = '2181'] = addr.split(':');
  return {
    host,
    port,
    stop: () => {
      if (started) spawnSync('bash', [join(root, 'scripts/zk.sh'), 'stop', join(work, 'zk')]);
    },
  };
}
