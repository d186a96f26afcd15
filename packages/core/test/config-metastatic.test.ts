// `driver: metastatic` (Nodepool 5.0+): its schema, defaults and the checks Nodepool makes when it
// loads (identical settings per backing label, max-age >= min-retention-time), plus ours: a
// backing label some provider offers, max-parallel-jobs >= 1. Every error names file, line and key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ConfigError, formatIssue, loadConfig, validateConfig, type MetastaticProvider } from '../src/config/index.js';
import { isolatedEnv, tempDir } from './config-helpers.js';

const BACKING = `labels:
  - name: backing-label
  - name: user-label
  - name: bad-label
providers:
  - name: fake-provider
    driver: fake
    cloud-images:
      - name: fake-image
    pools:
      - name: main
        labels:
          - name: backing-label
            cloud-image: fake-image
            min-ram: 8192
`;

function meta(labels: string, poolExtra = ''): string {
  return `${BACKING}  - name: meta-provider
    driver: metastatic
    pools:
      - name: main
        max-servers: 10
${poolExtra}        labels:
${labels}`;
}

async function issues(yaml: string): Promise<string[]> {
  const dir = tempDir({ 'nodepool.yaml': yaml });
  try {
    await loadConfig(join(dir, 'nodepool.yaml'), { env: isolatedEnv() });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    // config-validate reports the same
    assert.deepEqual((await validateConfig(join(dir, 'nodepool.yaml'), { env: isolatedEnv() })).map(formatIssue), err.issues.map(formatIssue));
    return err.issues.map((i) => formatIssue(i).replace(`${dir}/`, ''));
  }
  assert.fail('the config loaded');
}

test('a metastatic provider loads with Nodepool\'s defaults', async () => {
  const dir = tempDir({
    'nodepool.yaml': meta(`          - name: user-label
            backing-label: backing-label
            max-parallel-jobs: 2
            grace-time: 600
            max-age: 3600
            min-retention-time: 300
            host-key-checking: true
          - name: bad-label
            backing-label: backing-label
            max-parallel-jobs: 2
            grace-time: 600
            max-age: 3600
            min-retention-time: 300
`, `        priority: 1
        node-attributes:
          metaattr: meta
`),
  });
  const config = await loadConfig(join(dir, 'nodepool.yaml'), { env: isolatedEnv() });
  const p = config.providers.get('meta-provider') as MetastaticProvider;
  assert.deepEqual(p, {
    driver: 'metastatic', name: 'meta-provider', maxConcurrency: -1, priority: null,
    bootTimeout: 120, launchTimeout: 3600, launchRetries: 3,
    pools: [{
      name: 'main', priority: 1, maxServers: 10, hostKeyChecking: false, nodeAttributes: { metaattr: 'meta' },
      labels: [
        { name: 'user-label', backingLabel: 'backing-label', maxParallelJobs: 2, graceTime: 600, minRetentionTime: 300, maxAge: 3600, hostKeyChecking: true },
        { name: 'bad-label', backingLabel: 'backing-label', maxParallelJobs: 2, graceTime: 600, minRetentionTime: 300, maxAge: 3600, hostKeyChecking: false },
      ],
    }],
  });

  const minimal = tempDir({
    'nodepool.yaml': meta(`          - name: user-label
            backing-label: backing-label
`, `        host-key-checking: true
`),
  });
  const c2 = await loadConfig(join(minimal, 'nodepool.yaml'), { env: isolatedEnv() });
  assert.deepEqual((c2.providers.get('meta-provider') as MetastaticProvider).pools[0]?.labels, [
    // the label inherits the pool's host-key-checking
    { name: 'user-label', backingLabel: 'backing-label', maxParallelJobs: 1, graceTime: 60, minRetentionTime: 0, maxAge: null, hostKeyChecking: true },
  ]);
});

test('a backing label no provider offers, and max-parallel-jobs below 1, are errors at their keys', async () => {
  assert.deepEqual(await issues(meta(`          - name: user-label
            backing-label: no-such-label
            max-parallel-jobs: 0
`)), [
    'nodepool.yaml:24:13: providers[1].pools[0].labels[0].max-parallel-jobs: expected an integer of at least 1, got 0',
  ]);
  // (schema errors first, as Nodepool's validator; then the cross reference)
  assert.deepEqual(await issues(meta(`          - name: user-label
            backing-label: no-such-label
`)), [
    'nodepool.yaml:23:13: providers[1].pools[0].labels[0].backing-label: backing label "no-such-label" of label "user-label" is not offered by any provider pool of this configuration',
  ]);
});

test('Nodepool\'s load-time checks: one backing label, one set of settings; max-age >= min-retention-time', async () => {
  assert.deepEqual(await issues(meta(`          - name: user-label
            backing-label: backing-label
            max-parallel-jobs: 2
            grace-time: 2
          - name: bad-label
            backing-label: backing-label
            max-parallel-jobs: 4
            grace-time: 2
`)), [
    'nodepool.yaml:27:13: providers[1].pools[0].labels[1].backing-label: labels of backing label "backing-label" must have identical max-parallel-jobs, grace-time, min-retention-time and max-age (they differ from providers[1].pools[0].labels[0])',
  ]);
  assert.deepEqual(await issues(meta(`          - name: user-label
            backing-label: backing-label
            min-retention-time: 600
            max-age: 300
`)), [
    'nodepool.yaml:25:13: providers[1].pools[0].labels[0].max-age: max-age (300) must be greater than or equal to min-retention-time (600)',
  ]);
});

test('unknown keys, undefined labels and a label backing itself are errors', async () => {
  assert.deepEqual(await issues(meta(`          - name: user-label
            backing-label: user-label
            flavor-name: big
          - name: undefined-label
            backing-label: backing-label
`)), [
    'nodepool.yaml:24:13: providers[1].pools[0].labels[0].flavor-name: unknown key',
  ]);
  assert.deepEqual(await issues(meta(`          - name: user-label
            backing-label: user-label
          - name: undefined-label
            backing-label: backing-label
`)), [
    'nodepool.yaml:23:13: providers[1].pools[0].labels[0].backing-label: label "user-label" cannot be its own backing label',
    'nodepool.yaml:24:13: providers[1].pools[0].labels[1].name: label "undefined-label" is not defined in the top-level labels',
  ]);
});
