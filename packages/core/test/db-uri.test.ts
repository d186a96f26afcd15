import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DatabaseError, describeTarget, parseDatabaseUri } from '../src/db/index.js';
import { redact } from '../src/db/uri.js';

test('no URI selects the SQLite file in the state dir', () => {
  assert.deepEqual(parseDatabaseUri(null, '/var/lib/nodepool'), { engine: 'sqlite', filename: '/var/lib/nodepool/nodepool.db' });
  assert.deepEqual(parseDatabaseUri('  ', '/s'), { engine: 'sqlite', filename: '/s/nodepool.db' });
});

test('mysql URI with user, password, host, port and database', () => {
  const t = parseDatabaseUri('mysql://nodepool:s3cret@db.example.org:3307/nodepooldb', '/s');
  assert.deepEqual(t, {
    engine: 'mysql', host: 'db.example.org', port: 3307, socketPath: null, user: 'nodepool', password: 's3cret',
    database: 'nodepooldb', connectTimeoutMs: 5000,
  });
  assert.equal(describeTarget(t), 'mysql://nodepool@db.example.org:3307/nodepooldb');
});

test("the seed-era SQLAlchemy form mysql+pymysql:// is accepted, port defaults to 3306", () => {
  const t = parseDatabaseUri('mysql+pymysql://nodepool:p%40ss%2Fword@localhost/nodepool?charset=utf8', '/s');
  assert.equal(t.engine, 'mysql');
  if (t.engine !== 'mysql') return;
  assert.equal(t.port, 3306);
  assert.equal(t.host, 'localhost');
  assert.equal(t.password, 'p@ss/word');
  assert.equal(t.database, 'nodepool');
});

test('unix socket: ?socket= and SQLAlchemy ?unix_socket=', () => {
  for (const key of ['socket', 'unix_socket']) {
    const t = parseDatabaseUri(`mysql://nodepool@localhost/nodepool?${key}=/run/mysqld/mysqld.sock`, '/s');
    assert.equal(t.engine, 'mysql');
    if (t.engine !== 'mysql') return;
    assert.equal(t.socketPath, '/run/mysqld/mysqld.sock');
    assert.equal(t.host, null);
    assert.equal(t.password, null);
    assert.equal(describeTarget(t), 'mysql://nodepool@localhost/nodepool (socket /run/mysqld/mysqld.sock)');
  }
});

test('sqlite URIs: sqlite:///abs, SQLAlchemy sqlite:////abs, relative to the state dir, memory', () => {
  assert.deepEqual(parseDatabaseUri('sqlite:///var/lib/np/history.db', '/s'), { engine: 'sqlite', filename: '/var/lib/np/history.db' });
  assert.deepEqual(parseDatabaseUri('sqlite:////var/lib/np/history.db', '/s'), { engine: 'sqlite', filename: '/var/lib/np/history.db' });
  assert.deepEqual(parseDatabaseUri('sqlite://history.db', '/s'), { engine: 'sqlite', filename: '/s/history.db' });
  assert.deepEqual(parseDatabaseUri('sqlite::memory:', '/s'), { engine: 'sqlite', filename: ':memory:' });
});

test('bad URIs are DatabaseErrors of kind uri that never quote the password', () => {
  const cases = [
    'postgresql://u:topsecret@h/db',
    'mysql://:topsecret@h/db',
    'mysql://u:topsecret@h/',
    'mysql://u:topsecret@h/db?sslmode=require',
    'mysql://u:topsecret@h:99999/db',
    'nodepool',
  ];
  for (const uri of cases) {
    assert.throws(() => parseDatabaseUri(uri, '/s'), (err: unknown) => {
      assert.ok(err instanceof DatabaseError, uri);
      assert.equal(err.kind, 'uri');
      assert.ok(!err.message.includes('topsecret'), err.message);
      return true;
    });
  }
});

test('redact removes the password from driver messages', () => {
  const t = parseDatabaseUri('mysql://u:hunter2%40@h/db', '/s');
  assert.equal(redact('failed for mysql://u:hunter2@@h and hunter2%40', t), 'failed for mysql://u:***@h and ***');
});
