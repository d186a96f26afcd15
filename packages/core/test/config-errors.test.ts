// Broken configurations: every issue names file:line:col, the YAML key path and what was
// expected; all issues are collected; legacy keys say what replaced them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  ConfigError, formatIssue, isCronExpression, loadConfig, runConfigValidate, validateConfig,
  type ConfigIssue,
} from '../src/config/index.js';
import { fixture, FIXTURES, isolatedEnv, tempDir } from './config-helpers.js';

/** Issues as `name:line:col: keyPath: message` with the fixture directory stripped. */
function lines(issues: ConfigIssue[], dir = FIXTURES): string[] {
  return issues.map((i) => formatIssue(i).replace(`${dir}/`, ''));
}

async function loadIssues(file: string, opts: Parameters<typeof loadConfig>[1] = {}): Promise<ConfigIssue[]> {
  try {
    await loadConfig(file, { env: isolatedEnv(), ...opts });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.code, 'ECONFIG');
    assert.equal(err.message, err.issues.map(formatIssue).join('\n'), 'the message lists every issue, one per line');
    return err.issues;
  }
  assert.fail(`${file} loaded`);
}

test('malformed YAML: the parser message with its line', async () => {
  assert.deepEqual(lines(await validateConfig(fixture('yaml-error.yaml'))), [
    'yaml-error.yaml:9:1: YAML error: A block sequence may not be used as an implicit map key',
  ]);
});

test('YAML tags PyYAML safe_load refuses, and duplicate keys, are errors', async () => {
  const dir = tempDir({
    'tag.yaml': 'labels: !!python/object:os.system\n  - name: a\n',
    'dup.yaml': 'labels: []\nwebapp:\n  port: 1\n  port: 2\n',
  });
  const tag = await validateConfig(join(dir, 'tag.yaml'));
  assert.equal(tag.length, 1);
  assert.equal(tag[0]?.line, 1);
  assert.match(tag[0]?.message ?? '', /^YAML error: Unresolved tag/);
  assert.deepEqual(lines(await validateConfig(join(dir, 'dup.yaml')), dir),
    ['dup.yaml:4:3: YAML error: Map keys must be unique']);
});

test('schema errors: all of them, each with file:line:col, key path and expectation', async () => {
  const expected = [
    'schema-errors.yaml:3:5: zookeeper-servers[0].port: expected integer, got string',
    'schema-errors.yaml:8:5: labels[1].name: required key missing',
    'schema-errors.yaml:13:5: providers[0].boot-timeout: expected integer, got string',
    'schema-errors.yaml:16:9: providers[0].pools[0].max-servers: expected integer, got string',
    'schema-errors.yaml:20:13: providers[0].pools[0].labels[0].min-ram: expected integer, got string',
    'schema-errors.yaml:21:13: providers[0].pools[0].labels[0].colour: unknown key',
    'schema-errors.yaml:24:5: providers[1].cloud: unknown key',
    'schema-errors.yaml:28:13: providers[1].pools[0].nodes[0].labels: required key missing',
    'schema-errors.yaml:30:5: providers[2].driver: unknown driver "cloudstack", expected one of openstack, fake, static, metastatic, kubernetes, openshift, aws, test',
    'schema-errors.yaml:35:7: diskimages[0].env-vars.DIB_DEBUG: expected string, got integer',
    'schema-errors.yaml:36:1: nothandled: unknown key',
  ];
  assert.deepEqual(lines(await validateConfig(fixture('schema-errors.yaml'))), expected);
  assert.deepEqual(lines(await loadIssues(fixture('schema-errors.yaml'))), expected);
});

test('issue objects carry the parts separately', async () => {
  const [first] = await validateConfig(fixture('schema-errors.yaml'));
  assert.deepEqual(first, {
    file: fixture('schema-errors.yaml'), line: 3, column: 5, keyPath: 'zookeeper-servers[0].port',
    message: 'expected integer, got string',
  });
});

test('more type errors: floats, lists, mappings, unions', async () => {
  const dir = tempDir({
    'n.yaml': [
      'max-hold-age: 1.5', //                      1
      'labels: {name: a}', //                      2
      'webapp: [8005]', //                         3
      'diskimages:', //                            4
      '  - name: d', //                            5
      '    elements: ubuntu', //                   6
      '    release: 1.5', //                       7
      'providers:', //                             8
      '  - name: s', //                            9
      '    driver: static', //                     10
      '    pools:', //                             11
      '      - name: p', //                        12
      '        node-attributes: [a]', //           13
      '        nodes:', //                         14
      '          - name: h', //                    15
      '            labels: [a, 5]', //             16
      '            host-key: {a: b}', //           17
      '  - oops', //                               18
      '  - name: o', //                            19
      '    cloud: c', //                           20
      '    rate: fast', //                         21
      '    pools:', //                             22
      '      - name: p', //                        23
      '        auto-floating-ip: maybe', //        24
      '',
    ].join('\n'),
  });
  assert.deepEqual(lines(await validateConfig(join(dir, 'n.yaml')), dir), [
    'n.yaml:1:1: max-hold-age: expected integer, got float',
    'n.yaml:2:1: labels: expected list, got mapping',
    'n.yaml:3:1: webapp: expected mapping, got list',
    'n.yaml:6:5: diskimages[0].elements: expected list of strings, got string',
    'n.yaml:7:5: diskimages[0].release: expected string or integer, got float',
    'n.yaml:13:9: providers[0].pools[0].node-attributes: expected mapping, got list',
    'n.yaml:16:25: providers[0].pools[0].nodes[0].labels[1]: expected string, got integer',
    'n.yaml:17:13: providers[0].pools[0].nodes[0].host-key: expected string or list of strings, got mapping',
    'n.yaml:18:5: providers[1]: expected mapping, got string',
    'n.yaml:21:5: providers[2].rate: expected number, got string',
    'n.yaml:24:9: providers[2].pools[0].auto-floating-ip: expected boolean, got string',
  ]);
});

test('label rules: diskimage xor cloud-image, min-ram or flavor-name, image-id xor image-name', async () => {
  assert.deepEqual(lines(await validateConfig(fixture('label-rules.yaml'))), [
    'label-rules.yaml:9:9: providers[0].cloud-images[0].image-name: image-id and image-name are mutually exclusive',
    'label-rules.yaml:15:13: providers[0].pools[0].labels[0].cloud-image: diskimage and cloud-image are mutually exclusive',
    'label-rules.yaml:17:13: providers[0].pools[0].labels[1]: one of diskimage or cloud-image is required',
    'label-rules.yaml:19:13: providers[0].pools[0].labels[2]: at least one of min-ram or flavor-name is required',
  ]);
});

test('cross references, duplicates and static hosts shared between pools', async () => {
  const expected = [
    'cross-refs.yaml:3:5: labels[1].name: duplicate label "small" (first defined at labels[0].name)',
    'cross-refs.yaml:10:9: providers[0].diskimages[1].name: diskimage "missing-image" is not defined in the top-level diskimages',
    'cross-refs.yaml:19:13: providers[0].pools[0].labels[1].name: label "undefined-label" is not defined in the top-level labels',
    'cross-refs.yaml:23:13: providers[0].pools[0].labels[2].cloud-image: cloud-image "silver" does not exist in provider "fake-provider" (cloud-images: gold)',
    'cross-refs.yaml:25:13: providers[0].pools[0].labels[3].name: duplicate label in this pool "small" (first defined at providers[0].pools[0].labels[0].name)',
    'cross-refs.yaml:34:13: providers[1].pools[0].nodes[0].labels: label "unknown-static" is not defined in the top-level labels',
    'cross-refs.yaml:40:13: providers[2].pools[0].nodes[0].name: static node "host1.example.org" is already defined in provider "static-a" pool "main" (providers[1].pools[0].nodes[0]); it is also listed in provider "static-b" pool "other": static node names must be unique across all static pools',
  ];
  assert.deepEqual(lines(await validateConfig(fixture('cross-refs.yaml'))), expected);
  assert.deepEqual(lines(await loadIssues(fixture('cross-refs.yaml'))), expected);
});

test('a label diskimage must be top-level and uploaded by the provider', async () => {
  const dir = tempDir({
    'n.yaml': [
      'labels: [{name: a}]',
      'diskimages: [{name: built}, {name: other}]',
      'providers:',
      '  - name: fake-provider',
      '    diskimages: [{name: built}]',
      '    pools:',
      '      - name: main',
      '        labels:',
      '          - {name: a, diskimage: other, min-ram: 1}',
      '          - {name: a, diskimage: nowhere, min-ram: 1}',
      '',
    ].join('\n'),
  });
  assert.deepEqual(lines(await validateConfig(join(dir, 'n.yaml')), dir), [
    'n.yaml:9:23: providers[0].pools[0].labels[0].diskimage: diskimage "other" is not in the diskimages of provider "fake-provider" (it is never uploaded there)',
    'n.yaml:10:14: providers[0].pools[0].labels[1].name: duplicate label in this pool "a" (first defined at providers[0].pools[0].labels[0].name)',
  ]);
});

test('Nodepool 0.x/1.x keys are rejected with what replaced them; seed-era keys pass', async () => {
  const issues = lines(await validateConfig(fixture('legacy-1x.yaml')));
  assert.deepEqual(issues.map((l) => l.split(': ').slice(0, 2).join(': ')), [
    'legacy-1x.yaml:10:1: zmq-publishers',
    'legacy-1x.yaml:13:1: gearman-servers',
    'legacy-1x.yaml:18:5: labels[0].image',
    'legacy-1x.yaml:21:5: labels[0].providers',
    'legacy-1x.yaml:25:5: providers[0].cloud',
    'legacy-1x.yaml:26:5: providers[0].username',
    'legacy-1x.yaml:27:5: providers[0].password',
    'legacy-1x.yaml:28:5: providers[0].auth-url',
    'legacy-1x.yaml:29:5: providers[0].project-id',
    'legacy-1x.yaml:30:5: providers[0].max-servers',
    'legacy-1x.yaml:31:5: providers[0].images',
    'legacy-1x.yaml:36:1: targets',
  ], 'cron, dburi, script-dir and ready-script are not reported');
  const byKey = new Map(issues.map((l) => [l.split(': ')[1], l]));
  assert.match(byKey.get('gearman-servers') ?? '', /removed in Nodepool 3\.0.*node requests through ZooKeeper/);
  assert.match(byKey.get('zmq-publishers') ?? '', /removed in Nodepool 3\.0/);
  assert.match(byKey.get('targets') ?? '', /removed in Nodepool 3\.0.*ZooKeeper node requests/);
  assert.match(byKey.get('providers[0].max-servers') ?? '', /providers\[\]\.pools\[\]\.max-servers/);
  assert.match(byKey.get('providers[0].images') ?? '', /diskimages.*cloud-images/);
  assert.match(byKey.get('providers[0].username') ?? '', /clouds\.yaml/);
  assert.match(byKey.get('providers[0].cloud') ?? '', /required key missing/);
  assert.ok(!issues.some((l) => l.includes('hunter2')));
});

test('keys of later Nodepool releases are checked: zookeeper-timeout, zookeeper-tls, tenant-resource-limits, priority', async () => {
  const dir = tempDir({ 'modern.yaml': [
    'zookeeper-servers:', '  - host: zk1', 'zookeeper-timeout: -3', 'zookeeper-tls:', '  ca: /etc/zk/ca.pem',
    'tenant-resource-limits:', '  - tenant-name: t', '    max-servers: 3', '  - tenant-name: u',
    'providers:', '  - name: fake-provider', '    priority: high', '    pools: []', '',
  ].join('\n') });
  const issues = lines(await loadIssues(join(dir, 'modern.yaml')), dir);
  assert.deepEqual(issues, [
    'modern.yaml:3:1: zookeeper-timeout: expected number of seconds > 0, got -3',
    'modern.yaml:4:1: zookeeper-tls.cert: required key missing',
    'modern.yaml:4:1: zookeeper-tls.key: required key missing',
    'modern.yaml:12:5: providers[0].priority: expected integer, got string',
  ]);
});

test('a %(NODEPOOL_*) reference to a variable that is not set is an error at its line (others are left alone)', async () => {
  const dir = tempDir({ 'env.yaml': 'zookeeper-servers:\n  - host: zk-%(NODEPOOL_NO_SUCH)\nlabels:\n  - name: "%(HOME)"\n' });
  assert.deepEqual(lines(await loadIssues(join(dir, 'env.yaml')), dir), [
    'env.yaml:2:14: %(NODEPOOL_NO_SUCH): environment variable NODEPOOL_NO_SUCH is not set',
  ]);
});

test('tenant-resource-limits: a tenant listed twice and volume limits (not counted here) are errors', async () => {
  const dir = tempDir({ 'tenants.yaml': [
    'tenant-resource-limits:', '  - tenant-name: t', '    max-volumes: 3', '  - tenant-name: t', '    max-volume-gb: 100', '',
  ].join('\n') });
  assert.deepEqual(lines(await loadIssues(join(dir, 'tenants.yaml')), dir), [
    'tenants.yaml:3:5: tenant-resource-limits[0].max-volumes: volume limits (Nodepool 9.0+) are not supported by nodepool-ts: it does not count volumes; remove the key',
    'tenants.yaml:4:5: tenant-resource-limits[1].tenant-name: duplicate tenant "t"',
    'tenants.yaml:5:5: tenant-resource-limits[1].max-volume-gb: volume limits (Nodepool 9.0+) are not supported by nodepool-ts: it does not count volumes; remove the key',
  ]);
});

test('diskimage parents: unknown, looping, and an abstract image used by a provider are errors', async () => {
  const dir = tempDir({ 'parents.yaml': [
    'diskimages:',
    '  - name: orphan',
    '    parent: nosuch',
    '  - name: a',
    '    parent: b',
    '  - name: b',
    '    parent: a',
    '  - name: base',
    '    abstract: true',
    'providers:',
    '  - name: fake-provider',
    '    diskimages: [{name: base}]',
    '    pools: []',
    '',
  ].join('\n') });
  const issues = lines(await loadIssues(join(dir, 'parents.yaml')), dir);
  assert.deepEqual(issues.slice(0, 3), [
    'parents.yaml:3:5: diskimages[0].parent: unknown parent diskimage "nosuch"',
    'parents.yaml:5:5: diskimages[1].parent: diskimage parents loop: a -> b -> a',
    'parents.yaml:7:5: diskimages[2].parent: diskimage parents loop: b -> a -> b',
  ]);
  assert.equal(issues.length, 4, issues.join('\n'));
  assert.match(issues[3] ?? '', /^parents\.yaml:12:\d+: providers\[0\]\.diskimages\[0\]\.name: diskimage "base" is abstract \(only a parent of other diskimages\): it is never built$/);
});

test('cron expressions are checked (node-cron, five fields); database URIs are checked, never echoed', async () => {
  assert.equal(isCronExpression('27 */6 * * *'), true);
  assert.equal(isCronExpression('*/15 * * * *'), true);
  assert.equal(isCronExpression('61 * * * *'), false);
  assert.equal(isCronExpression('0 0 * * * *'), false, 'six fields (seconds) were never valid for Nodepool');
  assert.equal(isCronExpression('every minute'), false);
  const issues = lines(await validateConfig(fixture('bad-cron.yaml')));
  assert.deepEqual(issues, [
    'bad-cron.yaml:2:3: cron.cleanup: expected a cron expression "minute hour day-of-month month day-of-week", got "61 * * * *"',
    'bad-cron.yaml:3:3: cron.check: expected a cron expression "minute hour day-of-month month day-of-week", got "every 15 minutes"',
    'bad-cron.yaml:4:3: cron.image-update: expected a cron expression "minute hour day-of-month month day-of-week", got "0 0 * * * *"',
    'bad-cron.yaml:5:3: cron.reboot: unknown key',
    'bad-cron.yaml:6:1: dburi: expected a database URI: mysql://user:password@host/db, mysql+pymysql://... or sqlite:///path',
  ]);
  assert.ok(!issues.some((l) => l.includes('topsecret')));
});

test('dburi and database are one setting', async () => {
  const dir = tempDir({ 'n.yaml': 'dburi: sqlite:///a.db\ndatabase: sqlite:///b.db\n' });
  assert.deepEqual(lines(await validateConfig(join(dir, 'n.yaml')), dir),
    ['n.yaml:2:1: database: dburi and database are mutually exclusive']);
});

test('fake driver extras are validated', async () => {
  assert.deepEqual(lines(await validateConfig(fixture('fake-bad-extras.yaml'))), [
    'fake-bad-extras.yaml:4:5: providers[0].azs: expected at least one availability zone, got empty list',
    'fake-bad-extras.yaml:6:7: providers[0].quota.instances: expected integer, got string',
    'fake-bad-extras.yaml:8:7: providers[0].faults.error-rate: expected probability between 0 and 1, got 1.5',
    'fake-bad-extras.yaml:9:7: providers[0].faults.boot-delay: expected number of seconds >= 0, got -1',
    'fake-bad-extras.yaml:10:7: providers[0].faults.explode: unknown key',
  ]);
});

test('empty and missing files', async () => {
  assert.deepEqual(lines(await validateConfig(fixture('empty.yaml'))),
    ['empty.yaml: the configuration is empty, expected a mapping']);
  assert.deepEqual(lines(await validateConfig(fixture('no-such-file.yaml'))), ['no-such-file.yaml: file not found']);
  const dir = tempDir({ 'n.yaml': 'labels: []\n' });
  assert.deepEqual(lines(await validateConfig(join(dir, 'n.yaml'), { secureFile: join(dir, 'missing.yaml') }), dir),
    ['missing.yaml: file not found']);
});

test('secure file: legacy INI secure.conf, unknown diskimage, unknown keys', async () => {
  assert.deepEqual(lines(await validateConfig(fixture('nodepool-3x.yaml'), { secureFile: fixture('secure-legacy.conf') })), [
    'secure-legacy.conf:2:1: legacy INI secure file ([database] section): since Nodepool 3.0 the secure file is YAML (zookeeper-servers, diskimages[].env-vars; nodepool-ts also reads dburi here), e.g. "dburi: mysql+pymysql://user:password@host/nodepool"',
  ]);
  assert.deepEqual(lines(await validateConfig(fixture('nodepool-3x.yaml'), { secureFile: fixture('secure-unknown-image.yaml') })), [
    `secure-unknown-image.yaml:5:5: diskimages[1].name: unknown diskimage "no-such-image" (not defined in the diskimages of ${fixture('nodepool-3x.yaml')})`,
  ]);
  const dir = tempDir({ 's.yaml': 'labels: []\nzookeeper-servers: [{port: 1}]\n' });
  assert.deepEqual(lines(await validateConfig(fixture('nodepool-3x.yaml'), { secureFile: join(dir, 's.yaml') }), dir), [
    's.yaml:1:1: labels: unknown key',
    's.yaml:2:21: zookeeper-servers[0].host: required key missing',
  ]);
});

test('openstack: cloud is required and must exist in clouds.yaml (provider and cloud named)', async () => {
  const dir = tempDir({
    'n.yaml': [
      'providers:',
      '  - name: no-cloud-key',
      '  - name: os1',
      '    cloud: unknown-cloud',
      '  - name: os2',
      '    cloud: citycloud',
      '    region-name: Sto2',
      '',
    ].join('\n'),
  });
  assert.deepEqual(lines(await validateConfig(join(dir, 'n.yaml')), dir),
    ['n.yaml:2:5: providers[0].cloud: required key missing']);
  const fixed = tempDir({ 'n.yaml': 'providers:\n  - name: os1\n    cloud: unknown-cloud\n  - name: os2\n    cloud: citycloud\n    region-name: Sto2\n' });
  assert.deepEqual(await validateConfig(join(fixed, 'n.yaml')), [], 'config-validate does not need clouds.yaml');
  const issues = await loadIssues(join(fixed, 'n.yaml'), { cloudsFile: fixture('clouds.yaml') });
  assert.deepEqual(lines(issues, fixed), [
    `n.yaml:3:5: providers[0].cloud: cloud "unknown-cloud" of provider "os1" not found: no such cloud in ${fixture('clouds.yaml')} (clouds: citycloud, fake)`,
    'n.yaml:6:5: providers[1].region-name: region "Sto2" of provider "os2" is not a region of cloud "citycloud" (regions: Kna1, Lon1)',
  ]);
  const none = await loadIssues(join(fixed, 'n.yaml'), { env: isolatedEnv() });
  assert.match(none[0]?.message ?? '', /^cloud "unknown-cloud" of provider "os1" not found: no clouds.yaml found \(searched /);
});

test('clouds.yaml problems never show a password', async () => {
  const dir = tempDir({
    'n.yaml': 'providers:\n  - name: os\n    cloud: c\n',
    'badtype.yaml': 'clouds:\n  c:\n    auth:\n      password: [hunter2-secret]\n',
    'malformed.yaml': 'clouds:\n  c:\n    auth:\n      password: "hunter2-secret\n',
  });
  const a = await loadIssues(join(dir, 'n.yaml'), { cloudsFile: join(dir, 'badtype.yaml') });
  assert.deepEqual(lines(a, dir), ['badtype.yaml:4:7: clouds.c.auth.password: expected string, got list']);
  const b = await loadIssues(join(dir, 'n.yaml'), { cloudsFile: join(dir, 'malformed.yaml') });
  assert.equal(b.length, 1);
  assert.ok(b[0]);
  assert.match(formatIssue(b[0]), /malformed\.yaml:\d+:\d+: YAML error: /);
  for (const i of [...a, ...b]) assert.ok(!formatIssue(i).includes('hunter2'), formatIssue(i));
});

test('YAML anchors and merge keys work, and issues inside them still get a line', async () => {
  const dir = tempDir({
    'n.yaml': [
      'labels: [{name: a}]',
      'x-pool: &pool',
      '  name: main',
      '  max-servers: lots',
      'providers:',
      '  - name: fake-provider',
      '    pools:',
      '      - <<: *pool',
      '        labels: [{name: a, cloud-image: i, min-ram: 1}]',
      '',
    ].join('\n'),
  });
  const issues = lines(await validateConfig(join(dir, 'n.yaml')), dir);
  assert.deepEqual(issues, [
    'n.yaml:2:1: x-pool: unknown key',
    'n.yaml:4:3: providers[0].pools[0].max-servers: expected integer, got string',
  ]);
});

test('config-validate output and exit code', async () => {
  let out = '';
  const sink = { write: (s: string) => { out += s; } };
  assert.equal(await runConfigValidate(fixture('nodepool-3x.yaml'), null, sink), 0);
  const ok = out.trimEnd().split('\n');
  assert.equal(ok.length, 2);
  assert.match(ok[0] ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO nodepool\.cmd\.config_validator: validating .*nodepool-3x\.yaml$/);
  assert.match(ok[1] ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO nodepool\.cmd\.nodepoolcmd: Configuration validation complete$/);

  out = '';
  assert.equal(await runConfigValidate(fixture('bad-cron.yaml'), null, sink), 1);
  const bad = out.trimEnd().split('\n');
  assert.equal(bad.length, 1 + 5 + 1);
  assert.match(bad[1] ?? '', / ERROR nodepool\.cmd\.config_validator: .*bad-cron\.yaml:2:3: cron\.cleanup: /);
  assert.match(bad[6] ?? '', / ERROR nodepool\.cmd\.nodepoolcmd: Configuration validation failed: 5 issues$/);

  out = '';
  assert.equal(await runConfigValidate(fixture('nodepool-3x.yaml'), fixture('secure-legacy.conf'), sink), 1);
  assert.match(out, /legacy INI secure file/);
});

test('webapp.leases: limits are read; a bad value or inconsistent TTLs name the key', async () => {
  const dir = tempDir({
    'ok.yaml': 'labels: []\nwebapp:\n  leases:\n    max-ttl: 7200\n    rate-per-minute: 30\n',
    'bad.yaml': 'labels: []\nwebapp:\n  leases:\n    max-nodes-per-lease: 0\n    max-wait: soon\n',
    'ttl.yaml': 'labels: []\nwebapp:\n  leases:\n    min-ttl: 600\n    default-ttl: 300\n',
  });
  const ok = await loadConfig(join(dir, 'ok.yaml'), { env: isolatedEnv() });
  assert.deepEqual(ok.webapp.leases, { maxTtl: 7200, ratePerMinute: 30 });
  assert.deepEqual(lines(await validateConfig(join(dir, 'bad.yaml')), dir), [
    'bad.yaml:4:5: webapp.leases.max-nodes-per-lease: expected an integer of at least 1, got 0',
    'bad.yaml:5:5: webapp.leases.max-wait: expected integer, got string',
  ]);
  assert.deepEqual(lines(await loadIssues(join(dir, 'ttl.yaml')), dir), [
    'ttl.yaml:3:3: webapp.leases: expected min-ttl <= default-ttl <= max-ttl, got 600 / 300 / 86400 (defaults 60 / 3600 / 86400)',
  ]);
});
