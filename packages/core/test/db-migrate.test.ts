// Schema migrations against SQLite and MariaDB: fresh, idempotent, concurrent, and a schema
// newer than the code refused (never migrated down). Plus the connection errors an operator sees.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  CODE_SCHEMA_VERSION, DatabaseError, MIGRATIONS, MIGRATIONS_LOCK_TABLE, MIGRATIONS_TABLE, Recorder,
  SchemaTooNewError, migrateToLatest, openDatabase, schemaVersion, type Migration,
} from '../src/db/index.js';
import { captureLog, onEachDatabase } from './db-fixtures.js';

interface Fresh { uri: string | null; stateDir: string; cleanup(): Promise<void> }
interface Backend { name: string; fresh(): Promise<Fresh> }

const TABLES = ['nodes', 'node_events', 'requests', 'request_events', 'launch_attempts', 'image_builds', 'image_uploads', 'history_gaps'];

const future: Migration = {
  name: '002_from_the_future',
  async up(knex) {
    await knex.schema.createTable('future_things', (t) => { t.increments(); });
  },
};

const dbIndex = new URL('../src/db/index.ts', import.meta.url).pathname;

/** Run migrateToLatest in a separate node process (a second daemon), starting at `at` (ms). */
function migrateInChild(uri: string | null, stateDir: string, at: number): Promise<{ applied: string[]; to: number }> {
  const code = `
    import { openDatabase, migrateToLatest } from ${JSON.stringify(dbIndex)};
    const db = await openDatabase(${JSON.stringify(uri)}, ${JSON.stringify(stateDir)}, { migrate: false });
    await new Promise((r) => setTimeout(r, Math.max(0, ${at} - Date.now())));
    const r = await migrateToLatest(db.knex, db.target, { lockWaitMs: 30000 });
    process.stdout.write(JSON.stringify(r));
    await db.close();`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`child migrator failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as { applied: string[]; to: number });
    });
  });
}

function suite(backend: Backend): void {
  describe(`migrations on ${backend.name}`, () => {
    test('a fresh database gets every table and the current schema version', async () => {
      const f = await backend.fresh();
      const db = await openDatabase(f.uri, f.stateDir);
      try {
        for (const t of TABLES) assert.ok(await db.knex.schema.hasTable(t), t);
        assert.ok(!(await db.knex.schema.hasTable('leases')), 'leases are left to the web API');
        assert.equal(await schemaVersion(db.knex), CODE_SCHEMA_VERSION);
      } finally {
        await db.close();
        await f.cleanup();
      }
    });

    test('migrating again is a no-op', async () => {
      const f = await backend.fresh();
      const db1 = await openDatabase(f.uri, f.stateDir);
      await db1.close();
      const db2 = await openDatabase(f.uri, f.stateDir);
      try {
        const r = await migrateToLatest(db2.knex, db2.target);
        assert.deepEqual(r.applied, []);
        assert.equal(r.from, CODE_SCHEMA_VERSION);
        const rows = await db2.knex(MIGRATIONS_TABLE).select('name');
        assert.deepEqual(rows.map((x: { name: string }) => x.name), MIGRATIONS.map((m) => m.name));
      } finally {
        await db2.close();
        await f.cleanup();
      }
    });

    test('concurrent migrators in separate processes: one migrates, the others wait and find nothing to do', async () => {
      const f = await backend.fresh();
      try {
        // each daemon connects first, then all migrate at the same instant
        const at = Date.now() + 2500;
        const results = await Promise.all([1, 2, 3].map(() => migrateInChild(f.uri, f.stateDir, at)));
        const applied = results.flatMap((r) => r.applied);
        assert.deepEqual(applied, MIGRATIONS.map((m) => m.name), `applied once in total: ${JSON.stringify(results)}`);
        for (const r of results) assert.equal(r.to, CODE_SCHEMA_VERSION);
        const db = await openDatabase(f.uri, f.stateDir, { migrate: false });
        try {
          const names = await db.knex(MIGRATIONS_TABLE).select('name');
          assert.equal(names.length, MIGRATIONS.length);
          const locks = await db.knex(MIGRATIONS_LOCK_TABLE).select('is_locked');
          assert.deepEqual(locks.map((l: { is_locked: number }) => Number(l.is_locked)), [0], 'exactly one lock row, free');
        } finally {
          await db.close();
        }
      } finally {
        await f.cleanup();
      }
    });

    test('concurrent migrators in one process (async interleaving)', { skip: backend.name === 'sqlite' ? 'better-sqlite3 waits for locks synchronously; see the multi-process test' : false }, async () => {
      const f = await backend.fresh();
      const dbs = await Promise.all([1, 2, 3, 4].map(() => openDatabase(f.uri, f.stateDir, { migrate: false })));
      try {
        const results = await Promise.all(dbs.map((db) => migrateToLatest(db.knex, db.target, { lockWaitMs: 30_000 })));
        assert.equal(results.flatMap((r) => r.applied).length, MIGRATIONS.length);
      } finally {
        await Promise.all(dbs.map((db) => db.close()));
        await f.cleanup();
      }
    });

    test('a schema newer than the code is refused with a clear message, never migrated down', async () => {
      const f = await backend.fresh();
      // a newer nodepool-ts migrated this database
      const newer = await openDatabase(f.uri, f.stateDir, { migrations: [...MIGRATIONS, future] });
      assert.equal(await schemaVersion(newer.knex), 2);
      await newer.close();
      try {
        await assert.rejects(openDatabase(f.uri, f.stateDir), (err: unknown) => {
          assert.ok(err instanceof SchemaTooNewError);
          assert.equal(err.kind, 'schema-too-new');
          assert.match(err.message, /database schema is at version 2, this nodepool-ts knows up to 1; upgrade nodepool-ts/);
          assert.match(err.message, /002_from_the_future/);
          return true;
        });
        // also when only checking (CLI read paths)
        await assert.rejects(openDatabase(f.uri, f.stateDir, { migrate: false }), SchemaTooNewError);
        // the recorder refuses to start too
        const rec = new Recorder({ databaseUri: f.uri, stateDir: f.stateDir, log: captureLog().log });
        await assert.rejects(rec.start(), SchemaTooNewError);
        await rec.stop();
        const check = await openDatabase(f.uri, f.stateDir, { migrations: [...MIGRATIONS, future] });
        assert.ok(await check.knex.schema.hasTable('future_things'), 'nothing was rolled back');
        await check.close();
      } finally {
        await f.cleanup();
      }
    });
  });
}

onEachDatabase((name, fresh) => suite({ name, fresh }), (serverUri) => {
  test('a wrong password names user and host, never the password', async () => {
    const url = new URL(serverUri());
    url.password = 'WrongHorseBatteryStaple';
    await assert.rejects(openDatabase(url.toString(), '/tmp'), (err: unknown) => {
      assert.ok(err instanceof DatabaseError);
      assert.equal(err.kind, 'auth');
      assert.match(err.message, /access denied for nodepool@127\.0\.0\.1/);
      assert.match(err.message, new RegExp(`mysql://nodepool@127\\.0\\.0\\.1:${url.port}/`));
      assert.ok(!err.message.includes('WrongHorseBatteryStaple'), err.message);
      return true;
    });
  });

  test('a missing database says to create it', async () => {
    const url = new URL(serverUri());
    url.pathname = '/nodepool_does_not_exist';
    await assert.rejects(openDatabase(url.toString(), '/tmp'), (err: unknown) => {
      assert.ok(err instanceof DatabaseError);
      assert.equal(err.kind, 'auth');
      assert.match(err.message, /does not exist; create it/);
      return true;
    });
  });

  test('an unreachable server is a connect error', async () => {
    await assert.rejects(openDatabase('mysql://nodepool:pw@127.0.0.1:1/nodepool', '/tmp'), (err: unknown) => {
      assert.ok(err instanceof DatabaseError);
      assert.equal(err.kind, 'connect');
      assert.match(err.message, /unreachable as nodepool@127\.0\.0\.1/);
      return true;
    });
  });
});
