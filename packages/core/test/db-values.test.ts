// The writer's own value escaping must write exactly what mysql2's escaper writes (the history
// tests then prove the rows round-trip through a real MariaDB), and the request priority parse
// must read the `<priority>-` prefix of Zuul's request ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mysql2 from 'mysql2';
import { sqlValue } from '../src/db/writer.js';
import { requestPriority } from '../src/db/events.js';

test('values are escaped exactly as mysql2 escapes them', () => {
  const values: (string | number | null)[] = [
    null, 0, -1, 1.5, 1764268800.123456, 2 ** 53, 'ready', '', 'fake-provider', "it's", 'a "quoted" word',
    'back\\slash', 'line\nbreak', 'tab\there', 'nul\0byte', 'ctrl-z\x1a', 'bs\b', 'cr\r', 'ünïcödé 日本', "'; DROP TABLE nodes; --",
  ];
  for (const v of values) assert.equal(sqlValue(v), mysql2.escape(v), JSON.stringify(v));
});

test('a request id gives its priority; other shapes none', () => {
  assert.equal(requestPriority('100-0000000042'), 100);
  assert.equal(requestPriority('200-0000000001'), 200);
  assert.equal(requestPriority('0-1'), 0);
  assert.equal(requestPriority('2147483647-1'), 2147483647);
  assert.equal(requestPriority('2147483648-1'), null); // past the INT column
  assert.equal(requestPriority('99999999999999999999-1'), null);
  assert.equal(requestPriority('abc-1'), null);
  assert.equal(requestPriority('-1'), null);
  assert.equal(requestPriority('12a-1'), null);
  assert.equal(requestPriority('100'), null);
});
