// Shared helpers for integration tests: a unique ZooKeeper chroot per test on the real server
// started by scripts/run-tests.mjs, temp config files, polling waits, and launchers in-process.
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ZooKeeper } from '@nodepool-ts/core/zk';
import { configureLogging } from '@nodepool-ts/core/log';

configureLogging({ level: (process.env.NODEPOOL_TEST_LOG_LEVEL as 'info' | undefined) ?? 'silent' });

export function zkHostPort(): { host: string; port: number } {
  const hp = process.env.NODEPOOL_TEST_ZK ?? '127.0.0.1:21810';
  const [host = '127.0.0.1', port = '2181'] = hp.split(':');
  return { host, port: Number(port) };
}

export function uniqueChroot(prefix = 't'): string {
  return `/${prefix}-${randomBytes(6).toString('hex')}`;
}

export interface TestEnv {
  dir: string;
  chroot: string;
  zkYaml: string;
  /** kazoo host string for this chroot */
  kazooHosts: string;
  write(name: string, text: string): string;
  cleanup(): void;
}

export function testEnv(): TestEnv {
  const dir = mkdtempSync(join(tmpdir(), 'np-test-'));
  const chroot = uniqueChroot();
  const { host, port } = zkHostPort();
  return {
    dir,
    chroot,
    zkYaml: `zookeeper-servers:\n  - host: ${host}\n    port: ${port}\n    chroot: ${chroot}\n`,
    kazooHosts: `${host}:${port}${chroot}`,
    write(name: string, text: string): string {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    },
    cleanup(): void {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function connectZk(env: TestEnv): Promise<ZooKeeper> {
  const { host, port } = zkHostPort();
  const zk = new ZooKeeper({ servers: [{ host, port, chroot: env.chroot }], connectTimeoutMs: 10_000 });
  await zk.connect();
  return zk;
}

/** A test env and a ZooKeeper client on it; both are closed by `cleanups` (run at the end). */
export async function envWithZk(cleanups: (() => Promise<void> | void)[]): Promise<{ env: TestEnv; zk: ZooKeeper }> {
  const env = testEnv();
  const zk = await connectZk(env);
  cleanups.push(async () => {
    await zk.close();
    env.cleanup();
  });
  return { env, zk };
}

export async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  timeoutMs = 20_000, stepMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** A fake-provider nodepool.yaml for tests. */
export function fakeConfig(env: TestEnv, opts: {
  labels?: { name: string; minReady?: number; maxReadyAge?: number }[];
  providerExtra?: string;
  poolExtra?: string;
  poolLabels?: string[];
  top?: string;
  providerName?: string;
} = {}): string {
  const labels = opts.labels ?? [{ name: 'fake-label', minReady: 0 }];
  const poolLabels = opts.poolLabels ?? labels.map((l) => l.name);
  const name = opts.providerName ?? 'fake-provider';
  return `${env.zkYaml}
labels:
${labels.map((l) => `  - name: ${l.name}\n    min-ready: ${l.minReady ?? 0}${l.maxReadyAge ? `\n    max-ready-age: ${l.maxReadyAge}` : ''}`).join('\n')}
${opts.top ?? ''}
providers:
  - name: ${name}
    driver: fake
    rate: 0.001
    cloud-images:
      - name: fake-image
${opts.providerExtra ?? ''}
    pools:
      - name: main
        max-servers: 96
${opts.poolExtra ?? ''}
        labels:
${poolLabels.map((l) => `          - name: ${l}\n            cloud-image: fake-image\n            min-ram: 8192`).join('\n')}
`;
}
