// Pure pieces: error classification and redaction, address classification, the Nova create body.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QuotaExceededError } from '@nodepool-ts/core/provider';
import { classifyAddresses, createServerBody, errorMessage, parseQuotaMessage, redact, taskMetricKey } from '../src/index.js';
import { httpError, transportError } from '../src/errors.js';

const ctx = { provider: 'p1', cloud: 'c1', operation: 'createServer', call: 'compute POST /servers', secrets: ['s3cr3t-pass'] };

test('error bodies of every service yield their message', () => {
  assert.equal(errorMessage({ badRequest: { code: 400, message: 'Flavor x could not be found.' } }), 'Flavor x could not be found.');
  assert.equal(errorMessage({ NeutronError: { type: 'NetworkNotFound', message: 'Network n could not be found.', detail: '' } }),
    'Network n could not be found.');
  assert.equal(errorMessage({ error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } }),
    'The request you have made requires authentication.');
  assert.equal(errorMessage('<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  No image found with ID abc<br /><br />\n\n\n\n </body>\n</html>'),
    'No image found with ID abc');
});

test('classification: quota (Nova 403/413, Neutron OverQuota), auth, not found, retryable, fatal', () => {
  const q = httpError(ctx, { status: 403, body: { forbidden: { code: 403, message: 'Quota exceeded for cores: Requested 4, but already used 18 of 20 cores' } } });
  assert.ok(q instanceof QuotaExceededError);
  assert.deepEqual(q.detail, { resource: 'cores', requested: 4, used: 18, limit: 20 });
  assert.ok(httpError(ctx, { status: 413, body: { overLimit: { code: 413, message: 'Over limit' } } }) instanceof QuotaExceededError);
  assert.ok(httpError(ctx, { status: 409, body: { NeutronError: { type: 'OverQuota', message: "Quota exceeded for resources: ['floatingip'].", detail: '' } } }) instanceof QuotaExceededError);
  assert.match(httpError(ctx, { status: 401, body: {} }).message, /cloud c1: authentication failed/);
  assert.equal(httpError(ctx, { status: 404, body: {} }).kind, 'notfound');
  assert.equal(httpError(ctx, { status: 503, body: {} }).kind, 'retryable');
  assert.equal(httpError(ctx, { status: 429, body: {} }).kind, 'retryable');
  assert.equal(httpError(ctx, { status: 400, body: {} }).kind, 'fatal');
  const down = transportError(ctx, Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }));
  assert.equal(down.kind, 'retryable');
  assert.match(down.message, /cloud c1 is unreachable \(compute POST \/servers: ECONNREFUSED\)/);
  assert.equal(parseQuotaMessage('nothing'), null);
});

test('secrets never survive into a message', () => {
  assert.equal(redact('password s3cr3t-pass and s3cr3t-pass', ['s3cr3t-pass']), 'password *** and ***');
  assert.equal(redact('a b', ['a']), 'a b', 'too short to mask safely');
  const e = httpError(ctx, { status: 400, body: { badRequest: { code: 400, message: 'bad password s3cr3t-pass' } } });
  assert.doesNotMatch(e.message, /s3cr3t-pass/);
  const t = transportError(ctx, new Error('failed with s3cr3t-pass'));
  assert.doesNotMatch(t.message, /s3cr3t-pass/);
});

test('addresses: floating and external-network addresses are public, RFC 1918 private, global v6 public', () => {
  const nets = new Map([
    ['private', { id: 'n1', name: 'private', external: false }],
    ['public', { id: 'n2', name: 'public', external: true }],
  ]);
  const fixedAndFloating = {
    private: [
      { version: 4, addr: '10.0.0.5', 'OS-EXT-IPS:type': 'fixed' },
      { version: 4, addr: '172.24.4.9', 'OS-EXT-IPS:type': 'floating' },
      { version: 6, addr: 'fe80::1', 'OS-EXT-IPS:type': 'fixed' },
      { version: 6, addr: '2001:db8::5', 'OS-EXT-IPS:type': 'fixed' },
    ],
  };
  assert.deepEqual(classifyAddresses(fixedAndFloating, nets), {
    publicIpv4: '172.24.4.9', privateIpv4: '10.0.0.5', publicIpv6: '2001:db8::5', floating: ['172.24.4.9'],
  });
  assert.deepEqual(classifyAddresses({ public: [{ version: 4, addr: '172.24.4.3', 'OS-EXT-IPS:type': 'fixed' }] }, nets),
    { publicIpv4: '172.24.4.3', privateIpv4: null, publicIpv6: null, floating: [] });
  assert.equal(classifyAddresses({ other: [{ version: 4, addr: '198.51.100.7' }] }, nets).publicIpv4, '198.51.100.7');
  assert.deepEqual(classifyAddresses(undefined, nets), { publicIpv4: null, privateIpv4: null, publicIpv6: null, floating: [] });
});

test('the Nova create body: boot from volume, AZ, key, networks, security groups, base64 user data, config drive', () => {
  const body = createServerBody({
    imageId: 'img', networkIds: ['net1'],
    spec: {
      name: 'n1', image: { kind: 'upload', externalId: 'img' }, flavor: { id: 'f', name: 'f', vcpus: 1, ram: 1 }, az: 'az1',
      keyName: 'k', networks: ['net1'], securityGroups: ['default'], userdata: 'hi', bootFromVolume: true, volumeSize: 50,
      configDrive: false, metadata: { a: 'b' },
    },
  });
  assert.deepEqual(body, {
    server: {
      name: 'n1', flavorRef: 'f', metadata: { a: 'b' }, imageRef: '',
      block_device_mapping_v2: [{ boot_index: 0, uuid: 'img', source_type: 'image', destination_type: 'volume', volume_size: 50, delete_on_termination: true }],
      networks: [{ uuid: 'net1' }], availability_zone: 'az1', key_name: 'k', security_groups: [{ name: 'default' }],
      user_data: 'aGk=', config_drive: false,
    },
  });
});

test('statsd keys follow openstacksdk', () => {
  assert.equal(taskMetricKey({ provider: 'p1', service: 'compute', method: 'GET', name: 'servers_detail', status: 200, ms: 3 }),
    'nodepool.task.p1.compute.GET.servers_detail');
});
