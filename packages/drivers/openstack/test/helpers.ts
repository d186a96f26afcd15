// Test fixtures: the OpenStack API simulator in-process, and providers loaded from a real
// nodepool.yaml + clouds.yaml through the config loader (so the keys of §5.5 are exercised too).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config, type OpenStackProvider } from '@nodepool-ts/core/config';
import { configureLogging } from '@nodepool-ts/core/log';
import { nodepoolServerMetadata, type ServerSpec } from '@nodepool-ts/core/provider';
import { OpenStackSim, simCloudsYaml, type SimOptions } from '../../../../test/openstack-sim/index.js';
import { createOpenStackProvider, type OpenStackProviderManager, type OpenStackProviderOptions } from '../src/index.js';

configureLogging({ level: (process.env.NODEPOOL_TEST_LOG_LEVEL as 'info' | undefined) ?? 'silent' });

export const CIRROS = 'cirros-0.6.2-x86_64-disk';

export interface Fixture {
  sim: OpenStackSim;
  dir: string;
  config: Config;
  provider: OpenStackProvider;
  cleanup(): Promise<void>;
}

export const DEFAULT_PROVIDER = `
    rate: 0.0001
    boot-timeout: 5
    launch-timeout: 10
    clean-floating-ips: true
    diskimages:
      - name: ubuntu
        meta:
          distro: ubuntu
    cloud-images:
      - name: cirros
        image-name: ${CIRROS}
        username: cirros
    pools:
      - name: main
        max-servers: 10
        networks: [private]
        labels:
          - name: small
            cloud-image: cirros
            min-ram: 2048
          - name: big
            diskimage: ubuntu
            flavor-name: m1.large
`;

export function nodepoolYaml(provider: string, opts: { cloud?: string; name?: string; extraProviders?: string } = {}): string {
  return `zookeeper-servers:
  - host: 127.0.0.1
    port: 2181
labels:
  - name: small
  - name: big
  - name: keyscan
diskimages:
  - name: ubuntu
    formats: [qcow2]
providers:
  - name: ${opts.name ?? 'sim-provider'}
    cloud: ${opts.cloud ?? 'sim'}
${provider}
${opts.extraProviders ?? ''}`;
}

/** Starts a simulator and loads a provider for it. */
export async function fixture(opts: {
  sim?: SimOptions; provider?: string; cloud?: string; cloudsExtra?: string; name?: string;
} = {}): Promise<Fixture> {
  const sim = new OpenStackSim({ faults: { bootDelayMs: 20, deleteDelayMs: 20 }, ...(opts.sim ?? {}) });
  await sim.start();
  const dir = mkdtempSync(join(tmpdir(), 'np-os-'));
  const clouds = join(dir, 'clouds.yaml');
  writeFileSync(clouds, simCloudsYaml(sim, opts.cloudsExtra ?? ''));
  const file = join(dir, 'nodepool.yaml');
  writeFileSync(file, nodepoolYaml(opts.provider ?? DEFAULT_PROVIDER, {
    ...(opts.cloud ? { cloud: opts.cloud } : {}), ...(opts.name ? { name: opts.name } : {}),
  }));
  const config = await loadConfig(file, { cloudsFile: clouds, env: { ...process.env, NODEPOOL_STATE_DIR: dir } });
  const provider = [...config.providers.values()][0];
  if (!provider || provider.driver !== 'openstack') throw new Error('fixture: no openstack provider');
  return {
    sim, dir, config, provider,
    async cleanup() {
      await sim.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startManager(f: Fixture, opts: OpenStackProviderOptions = {}): Promise<OpenStackProviderManager> {
  const m = createOpenStackProvider(f.provider, { validateOnStart: false, pollIntervalMs: 20, ...opts });
  await m.start();
  return m;
}

/** A ServerSpec like the launcher builds for `label` of pool `main`. */
export function specFor(f: Fixture, labelName: string, nodeId: string, over: Partial<ServerSpec> = {}): ServerSpec {
  const pool = f.provider.pools[0];
  const label = pool?.labels.find((l) => l.name === labelName);
  if (!pool || !label) throw new Error(`no label ${labelName}`);
  const ci = f.provider.cloudImages.find((c) => c.name === label.cloudImage);
  return {
    name: `${labelName}-${f.provider.name}-${nodeId}`,
    image: ci ? { kind: 'cloud', name: ci.imageName ?? ci.name, id: ci.imageId } : { kind: 'upload', externalId: 'missing' },
    flavor: { id: '2', name: 'm1.small', vcpus: 1, ram: 2048 },
    az: null,
    keyName: label.keyName,
    networks: pool.networks,
    securityGroups: pool.securityGroups,
    userdata: label.userdata,
    bootFromVolume: label.bootFromVolume,
    volumeSize: label.volumeSize,
    configDrive: null,
    metadata: nodepoolServerMetadata({
      provider: f.provider.name, nodeId, imageName: label.cloudImage ?? label.diskimage ?? '', label: label.name,
      instanceProperties: label.instanceProperties,
    }),
    ...over,
  };
}

/** A token of a simulator user, for tests that act as another client of the cloud. */
export async function simToken(sim: OpenStackSim, user: 'demo' | 'alice' = 'demo'): Promise<string> {
  const u = user === 'demo'
    ? { name: 'demo', password: 'secret-demo-pw', domain: 'Default', project: 'demo' }
    : { name: 'alice', password: 'wonderland-pw', domain: 'Example', project: 'ci' };
  const r = await fetch(`${sim.authUrl}/auth/tokens`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      auth: {
        identity: { methods: ['password'], password: { user: { name: u.name, domain: { name: u.domain }, password: u.password } } },
        scope: { project: { name: u.project, domain: { name: u.domain } } },
      },
    }),
  });
  const t = r.headers.get('x-subject-token');
  if (r.status !== 201 || !t) throw new Error(`simToken: HTTP ${r.status}`);
  return t;
}

/** One raw API call to the simulator (`path` includes the service prefix, e.g. `/compute/v2.1/servers`). */
export async function simApi(sim: OpenStackSim, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${sim.base}${path}`, {
    method,
    headers: { 'X-Auth-Token': token, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await r.text();
  let parsed: Record<string, unknown> = {};
  try { parsed = text ? JSON.parse(text) as Record<string, unknown> : {}; } catch { parsed = { text }; }
  return { status: r.status, body: parsed };
}

/** The id of a simulator network by name. */
export function netId(sim: OpenStackSim, name: string): string {
  for (const n of sim.state.networks.values()) if (n.name === name) return n.id;
  throw new Error(`no network ${name}`);
}
