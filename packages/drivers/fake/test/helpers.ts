// Builders for the typed config the YAML loader produces, so tests state only what matters.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CloudPoolLabel, FakeFaults, FakeProvider } from '@nodepool-ts/core/config';
import type { ServerSpec } from '@nodepool-ts/core/provider';
import { nodepoolServerMetadata } from '@nodepool-ts/core/provider';
import { FakeProviderManager, DEFAULT_FAKE_IMAGE } from '../src/index.js';
import type { FakeProviderOptions } from '../src/index.js';

export const NO_FAULTS: FakeFaults = {
  bootDelay: 0, createFailureRate: 0, errorRate: 0, apiErrorRate: 0, quotaExceeded: false,
  deleteFailureRate: 0, deleteDelay: 0,
};

export function fakeConfig(over: Partial<Omit<FakeProvider, 'faults'>> & { faults?: Partial<FakeFaults> } = {}): FakeProvider {
  const { faults, ...rest } = over;
  return {
    name: 'fake-provider',
    driver: 'fake',
    maxConcurrency: -1,
    priority: null,
    postUploadHook: null,
    imageUploadTimeout: 3600,
    launchCircuitBreaker: null,
    cloud: 'fake',
    regionName: null,
    bootTimeout: 60,
    launchTimeout: 3600,
    launchRetries: 3,
    rate: 0,
    hostnameFormat: '{label.name}-{provider.name}-{node.id}',
    imageNameFormat: '{image_name}-{timestamp}',
    imageFormat: 'qcow2',
    cloudConfig: null,
    diskimages: [],
    cloudImages: [],
    pools: [],
    azs: ['az1', 'az2'],
    quota: { instances: Infinity, cores: Infinity, ram: Infinity },
    stateFile: null,
    flavors: [
      { name: 'm1.small', id: 'small', vcpus: 1, ram: 2048 },
      { name: 'm1.large', id: 'large', vcpus: 4, ram: 8192 },
      { name: 'm1.medium', id: 'medium', vcpus: 2, ram: 4096 },
      { name: 'big-ssd', id: 'ssd', vcpus: 8, ram: 16384 },
    ],
    ...rest,
    faults: { ...NO_FAULTS, ...faults },
  };
}

export function label(over: Partial<CloudPoolLabel> = {}): CloudPoolLabel {
  return {
    name: 'fake-label', diskimage: null, cloudImage: 'fake-cloud-image', minRam: 2048, flavorName: null,
    keyName: null, consoleLog: false, bootFromVolume: false, volumeSize: 50, instanceProperties: {}, dynamicInstanceProperties: {},
    userdata: null, ...over,
  };
}

export function spec(over: Partial<ServerSpec> = {}, nodeId = '0000000001'): ServerSpec {
  return {
    name: `fake-label-fake-provider-${nodeId}`,
    image: { kind: 'cloud', name: DEFAULT_FAKE_IMAGE.name, id: null },
    flavor: { id: 'small', name: 'm1.small', vcpus: 1, ram: 2048 },
    az: null,
    keyName: null,
    networks: [],
    securityGroups: [],
    userdata: null,
    bootFromVolume: false,
    volumeSize: 50,
    configDrive: null,
    metadata: nodepoolServerMetadata({
      provider: 'fake-provider', nodeId, imageName: 'fake-cloud-image', label: 'fake-label',
    }),
    ...over,
  };
}

/** Starts a provider and registers it for stop() at the end of the test. */
export async function started(cfg: FakeProvider, opts: FakeProviderOptions = {},
  cleanup: (() => Promise<void>)[] = []): Promise<FakeProviderManager> {
  const p = new FakeProviderManager(cfg, { seed: 42, ...opts });
  await p.start();
  cleanup.push(() => p.stop());
  return p;
}

export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'fake-cloud-test-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
