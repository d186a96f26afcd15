// Token scopes in the database: the migration that adds them leaves every existing token with
// `["leases"]` (on SQLite and MariaDB), and the store creates, reads and checks scopes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase } from '@nodepool-ts/core/db';
import { onEachDatabase, type FreshDb } from '../../core/test/db-fixtures.js';
import { WEB_MIGRATIONS, WEB_MIGRATIONS_TABLE, migrateWeb } from '../src/web/db.js';
import { TokenError, TokenStore } from '../src/web/tokens.js';

type Fresh = FreshDb;

function suite(name: string, fresh: () => Promise<Fresh>): void {
  describe(`token scopes on ${name}`, () => {
    test('tokens from before scopes get ["leases"]; the migration is recorded and runs once', async () => {
      const f = await fresh();
      const db = await openDatabase(f.uri, f.stateDir);
      try {
        // the schema of a launcher from before scopes, with a token in it
        assert.deepEqual(await migrateWeb(db.knex, WEB_MIGRATIONS.slice(0, 1)), ['web_001_tokens_leases']);
        assert.ok(!(await db.knex.schema.hasColumn('tokens', 'scopes')));
        await db.knex('tokens').insert({ id: 'aaaaaaaaaaaa', name: 'old', hash: '0'.repeat(64), created_at: 1, max_nodes: null });
        assert.deepEqual(await migrateWeb(db.knex), ['web_002_token_scopes']);
        const row = await db.knex('tokens').where({ name: 'old' }).first('scopes') as { scopes: string };
        assert.equal(row.scopes, '["leases"]');
        const store = new TokenStore(db.knex);
        assert.deepEqual((await store.get('old'))?.scopes, ['leases']);
        // again: nothing to do
        assert.deepEqual(await migrateWeb(db.knex), []);
        const names = (await db.knex(WEB_MIGRATIONS_TABLE).select('name')).map((r: { name: string }) => r.name);
        assert.deepEqual(names, ['web_001_tokens_leases', 'web_002_token_scopes']);
        // a row inserted without scopes (an older launcher still running) takes the default too
        await db.knex('tokens').insert({ id: 'bbbbbbbbbbbb', name: 'older', hash: '0'.repeat(64), created_at: 2 });
        assert.deepEqual((await store.get('older'))?.scopes, ['leases']);

        const hosts = await store.create('ops', { scopes: ['hosts'] });
        assert.deepEqual(hosts.info.scopes, ['hosts']);
        const both = await store.create('both', { scopes: ['hosts', 'leases', 'hosts'] });
        assert.deepEqual(both.info.scopes, ['leases', 'hosts'], 'sorted, no duplicates');
        assert.deepEqual((await store.create('plain')).info.scopes, ['leases']);
        const check = await store.verify(hosts.token);
        assert.ok(check.ok && check.token.scopes.join() === 'hosts');
        await assert.rejects(store.create('bad', { scopes: ['leases', 'admin'] }),
          (err: unknown) => err instanceof TokenError && err.code === 'ETOKENSCOPE' && /unknown scope "admin"/.test(err.message));
        // oldest first; tokens made in the same millisecond by name
        const listed = await store.list();
        assert.deepEqual(listed.map((t) => t.name),
          [...listed].sort((a, b) => a.createdAt - b.createdAt || a.name.localeCompare(b.name)).map((t) => t.name));
        assert.deepEqual(listed.slice(0, 2).map((t) => t.name), ['old', 'older']);
        assert.deepEqual(Object.fromEntries(listed.map((t) => [t.name, t.scopes.join(',')])),
          { old: 'leases', older: 'leases', ops: 'hosts', both: 'leases,hosts', plain: 'leases' });
      } finally {
        await db.close();
        await f.cleanup();
      }
    });
  });
}

onEachDatabase(suite);
