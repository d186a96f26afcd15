// Shared set-up for the CLI tests: a private chroot on the test ZooKeeper, a config fixture
// pointing at it, a seeding client, and an in-process runner capturing stdout/stderr.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { ZooKeeper } from '@nodepool-ts/core/zk';
import { main } from '../src/main.js';

export const ZK = process.env.NODEPOOL_TEST_ZK ?? '127.0.0.1:21810';

export function zkHostPort(): { host: string; port: number } {
  const first = ZK.split(',')[0] ?? ZK;
  const [host = '127.0.0.1', port = '2181'] = first.split('/')[0]?.split(':') ?? [];
  return { host, port: Number(port) };
}

export interface Fixture {
  dir: string;
  configFile: string;
  chroot: string;
  /** client on the fixture's chroot, for seeding and checking */
  zk: ZooKeeper;
  cleanup(): Promise<void>;
}

export interface FixtureOptions {
  /** extra top-level YAML appended to the config */
  extraYaml?: string;
  /** replace the zookeeper-servers block (e.g. an unreachable server) */
  zookeeperYaml?: string;
  /** give the fake provider a state file (shared by every process using the config) */
  fakeStateFile?: boolean;
  /** YAML lines (indented 6) for the fake provider's `faults:` */
  fakeFaults?: string;
}

export function baseConfigYaml(chroot: string, opts: FixtureOptions = {}): string {
  const { host, port } = zkHostPort();
  const zkYaml = opts.zookeeperYaml ?? `zookeeper-servers:
  - host: ${host}
    port: ${port}
    chroot: ${chroot}
`;
  return `${zkYaml}
labels:
  - name: fake-label
    min-ready: 0
  - name: fake-dib-label
    min-ready: 0

diskimages:
  - name: fake-dib-image
    elements: [ubuntu-minimal]
  - name: paused-image
    pause: true

providers:
  - name: fake-provider
    driver: fake
${opts.fakeStateFile ? '    state-file: fake-cloud.json\n' : ''}${opts.fakeFaults ? `    faults:\n${opts.fakeFaults}` : ''}    diskimages:
      - name: fake-dib-image
    pools:
      - name: main
        max-servers: 96
        labels:
          - name: fake-label
            diskimage: fake-dib-image
            min-ram: 8192
          - name: fake-dib-label
            diskimage: fake-dib-image
            min-ram: 8192
${opts.extraYaml ?? ''}`;
}

export async function makeFixture(opts: FixtureOptions = {}): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'nodepool-cli-'));
  const chroot = `/t-cli-${randomBytes(6).toString('hex')}`;
  const configFile = join(dir, 'nodepool.yaml');
  writeFileSync(configFile, baseConfigYaml(chroot, opts));
  const { host, port } = zkHostPort();
  const zk = new ZooKeeper({ servers: [{ host, port, chroot }], connectTimeoutMs: 10_000 });
  await zk.connect();
  return {
    dir, configFile, chroot, zk,
    async cleanup() {
      await zk.close();
      const root = new ZooKeeper({ servers: [{ host, port, chroot: null }], connectTimeoutMs: 10_000 });
      await root.connect();
      try {
        await root.deleteRecursive(chroot);
      } finally {
        await root.close();
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(
  argv: string[],
  opts: { now?: number; stdin?: string; zkConnectTimeoutMs?: number } = {},
): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (t) => { stdout += t; },
    stderr: (t) => { stderr += t; },
    stdin: Readable.from(opts.stdin === undefined ? [] : [opts.stdin]),
    now: opts.now === undefined ? undefined : () => opts.now as number,
    zkConnectTimeoutMs: opts.zkConnectTimeoutMs,
  });
  return { code, stdout, stderr };
}

export const SAMPLES = '/work/shared/docs/nodepool-output-samples';
