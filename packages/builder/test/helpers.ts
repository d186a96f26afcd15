// Test scaffolding for the builder: a private ZooKeeper chroot on the real server, a temp dir
// with images-dir/log dir/fake-cloud state file, nodepool.yaml fixtures written per scenario,
// builders running in-process with short intervals and the fake disk-image-create.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FakeProvider } from '@nodepool-ts/core/config';
import { configureLogging } from '@nodepool-ts/core/log';
import type { ImageInfo, UploadImageOptions } from '@nodepool-ts/core/provider';
import { ProviderError } from '@nodepool-ts/core/provider';
import { ZooKeeper } from '@nodepool-ts/core/zk';
import { FakeProviderManager } from '@nodepool-ts/driver-fake';
import { Builder, type BuilderOptions, type ProviderFactory } from '../src/index.js';

configureLogging({ level: (process.env.NODEPOOL_TEST_LOG_LEVEL as 'info' | undefined) ?? 'silent' });

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const FAKE_DIB = join(REPO, 'test', 'dib', 'fake-disk-image-create');
const ZK = process.env.NODEPOOL_TEST_ZK ?? '127.0.0.1:21810';

export interface DiskImageSpec {
  name: string;
  elements?: string[];
  release?: string | number;
  formats?: string[];
  envVars?: Record<string, string>;
  rebuildAge?: number;
  pause?: boolean;
  username?: string;
  buildTimeout?: number;
  deleteAfterUpload?: boolean;
  keepFormats?: string[];
}

export interface ProviderSpec {
  name: string;
  /** provider diskimages; default: every diskimage */
  diskimages?: { name: string; pause?: boolean; meta?: Record<string, string> }[];
  /** extra YAML lines indented for a provider entry */
  extra?: string;
  /** pool labels (label name → diskimage) */
  labels?: { name: string; diskimage: string }[];
}

export interface Scenario {
  diskimages: DiskImageSpec[];
  providers?: ProviderSpec[];
  labels?: { name: string; minReady?: number }[];
  buildLogRetention?: number;
  elementsDir?: string;
  top?: string;
}

export class TestEnv {
  readonly dir: string;
  readonly chroot: string;
  readonly imagesDir: string;
  readonly logDir: string;
  readonly cloudFile: string;
  readonly configFile: string;
  private readonly clients: ZooKeeper[] = [];
  private readonly builders: Builder[] = [];

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'np-builder-'));
    this.chroot = `/t-${randomBytes(6).toString('hex')}`;
    this.imagesDir = join(this.dir, 'images');
    this.logDir = join(this.dir, 'logs');
    this.cloudFile = join(this.dir, 'fake-cloud.json');
    this.configFile = join(this.dir, 'nodepool.yaml');
  }

  get zkHost(): { host: string; port: number } {
    const [host = '127.0.0.1', port = '2181'] = ZK.split(':');
    return { host, port: Number(port) };
  }

  /** nodepool.yaml for a scenario (written to `file`, default the env's config file). */
  writeConfig(s: Scenario, file = this.configFile, imagesDir = this.imagesDir): string {
    const { host, port } = this.zkHost;
    const providers = s.providers ?? [{ name: 'fake-provider' }];
    const labels = s.labels ?? [];
    const lines: string[] = [
      'zookeeper-servers:', `  - host: ${host}`, `    port: ${port}`, `    chroot: ${this.chroot}`,
      `images-dir: ${imagesDir}`, `build-log-dir: ${this.logDir}`,
    ];
    if (s.buildLogRetention !== undefined) lines.push(`build-log-retention: ${s.buildLogRetention}`);
    if (s.elementsDir !== undefined) lines.push(`elements-dir: ${s.elementsDir}`);
    if (s.top !== undefined) lines.push(s.top);
    lines.push(labels.length === 0 ? 'labels: []' : 'labels:');
    for (const l of labels) lines.push(`  - name: ${l.name}`, `    min-ready: ${l.minReady ?? 0}`);
    lines.push(s.diskimages.length === 0 ? 'diskimages: []' : 'diskimages:');
    for (const d of s.diskimages) {
      lines.push(`  - name: ${d.name}`, `    elements: [${(d.elements ?? ['fedora', 'vm']).join(', ')}]`);
      if (d.release !== undefined) lines.push(`    release: ${JSON.stringify(d.release)}`);
      if (d.formats !== undefined) lines.push(`    formats: [${d.formats.join(', ')}]`);
      if (d.rebuildAge !== undefined) lines.push(`    rebuild-age: ${d.rebuildAge}`);
      if (d.pause !== undefined) lines.push(`    pause: ${d.pause}`);
      if (d.username !== undefined) lines.push(`    username: ${d.username}`);
      if (d.buildTimeout !== undefined) lines.push(`    build-timeout: ${d.buildTimeout}`);
      if (d.deleteAfterUpload !== undefined) lines.push(`    delete-after-upload: ${d.deleteAfterUpload}`);
      if (d.keepFormats !== undefined) lines.push(`    keep-formats: [${d.keepFormats.join(', ')}]`);
      const env = d.envVars ?? {};
      if (Object.keys(env).length > 0) {
        lines.push('    env-vars:');
        for (const [k, v] of Object.entries(env)) lines.push(`      ${k}: ${JSON.stringify(v)}`);
      }
    }
    lines.push(providers.length === 0 ? 'providers: []' : 'providers:');
    for (const p of providers) {
      const dis: NonNullable<typeof p.diskimages> = p.diskimages ?? s.diskimages.map((d) => ({ name: d.name }));
      lines.push(`  - name: ${p.name}`, '    driver: fake', '    rate: 0.0001', `    state-file: ${this.cloudFile}`);
      if (p.extra) lines.push(p.extra);
      lines.push(dis.length === 0 ? '    diskimages: []' : '    diskimages:');
      for (const d of dis) {
        lines.push(`      - name: ${d.name}`);
        if (d.pause !== undefined) lines.push(`        pause: ${d.pause}`);
        if (d.meta) {
          lines.push('        meta:');
          for (const [k, v] of Object.entries(d.meta)) lines.push(`          ${k}: ${JSON.stringify(v)}`);
        }
      }
      const pl = p.labels ?? [];
      lines.push('    pools:', '      - name: main', '        max-servers: 10', pl.length === 0 ? '        labels: []' : '        labels:');
      for (const l of pl) lines.push(`          - name: ${l.name}`, `            diskimage: ${l.diskimage}`, '            min-ram: 8192');
    }
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, lines.join('\n') + '\n');
    return file;
  }

  async zk(): Promise<ZooKeeper> {
    const { host, port } = this.zkHost;
    const zk = new ZooKeeper({ servers: [{ host, port, chroot: this.chroot }], connectTimeoutMs: 10_000 });
    await zk.connect();
    this.clients.push(zk);
    return zk;
  }

  /** A builder on this env with fast intervals and the fake DIB; started. */
  async builder(opts: Partial<BuilderOptions> = {}): Promise<Builder> {
    const b = new Builder({
      configFile: this.configFile,
      dibCmd: FAKE_DIB,
      buildIntervalMs: 100,
      uploadIntervalMs: 100,
      cleanupIntervalMs: 300,
      errorBackoffMs: 200,
      killGraceMs: 2000,
      connectTimeoutMs: 10_000,
      ...opts,
    });
    this.builders.push(b);
    await b.start();
    return b;
  }

  /** A fake cloud on the shared state file, as another process would see it. */
  async cloud(name = 'fake-provider'): Promise<FakeProviderManager> {
    const mgr = new FakeProviderManager(fakeProviderConfig(name, this.cloudFile));
    await mgr.start();
    return mgr;
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled(this.builders.map((b) => b.stop()));
    const root = this.clients[0];
    for (const c of this.clients.slice(1)) await c.close().catch(() => undefined);
    if (root) {
      await root.close().catch(() => undefined);
    }
    const { host, port } = this.zkHost;
    const admin = new ZooKeeper({ servers: `${host}:${port}`, connectTimeoutMs: 10_000 });
    try {
      await admin.connect();
      await admin.deleteRecursive(this.chroot);
    } catch {
      // best effort
    } finally {
      await admin.close();
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A minimal FakeProvider config sharing `stateFile` (for reading/poking the cloud in tests). */
export function fakeProviderConfig(name: string, stateFile: string): FakeProvider {
  return {
    driver: 'fake', name, maxConcurrency: -1, priority: null, postUploadHook: null, imageUploadTimeout: 3600, launchCircuitBreaker: null, cloud: 'fake', regionName: null, bootTimeout: 60, launchTimeout: 3600,
    launchRetries: 3, rate: 0.0001, hostnameFormat: '{label.name}-{provider.name}-{node.id}',
    imageNameFormat: '{image_name}-{timestamp}', imageFormat: 'qcow2', cloudConfig: null, diskimages: [],
    cloudImages: [], pools: [], azs: ['az1'], quota: { instances: Infinity, cores: Infinity, ram: Infinity },
    faults: {
      bootDelay: 0, createFailureRate: 0, errorRate: 0, apiErrorRate: 0, quotaExceeded: false,
      deleteFailureRate: 0, deleteDelay: 0,
    },
    stateFile, flavors: [],
  };
}

/** Wraps the fake cloud so its next `n` uploads fail (a real cloud's upload error, not a mock of ZK). */
export function failingUploads(count: { left: number }): ProviderFactory {
  return (provider) => {
    if (provider.driver !== 'fake') throw new Error('test factory only makes fake clouds');
    const mgr = new FakeProviderManager(provider);
    const upload = mgr.uploadImage.bind(mgr);
    mgr.uploadImage = async (opts: UploadImageOptions): Promise<ImageInfo> => {
      if (count.left > 0) {
        count.left--;
        throw new ProviderError(provider.name, 'retryable', 'HTTP 500: injected upload failure', { operation: 'uploadImage' });
      }
      return upload(opts);
    };
    return mgr;
  };
}

export { waitFor } from '../../../test/helpers/harness.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export { expireSession } from '../../core/test/zk-helpers.js';
