// The Recorder against a healthy SQLite and MariaDB: current rows, event trails in order,
// launch attempts, builds/uploads, retention, and the query helpers the CLI uses.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Recorder, SPILL_FILE, openDatabase, queryDeletedNodes, queryGaps, queryHistory, queryStats, percentile, type Database,
} from '../src/db/index.js';
import { snapshotNode } from '../src/db/events.js';
import { pruneHistory } from '../src/db/writer.js';
import { MIGRATIONS_TABLE } from '../src/db/connection.js';
import { MIGRATIONS, type Migration } from '../src/db/schema.js';
import { MIN_READY_REQUESTOR, type ImageBuild, type ImageUpload, type Node } from '../src/model/types.js';
import {
  captureLog, freshMysqlDatabase, makeNode, makeRequest, onEachDatabase, tempDir, withState,
} from './db-fixtures.js';

interface Fresh { uri: string | null; stateDir: string; cleanup(): Promise<void> }
interface Backend { name: string; fresh(): Promise<Fresh> }

const L = { launcher: 'nl01-1-PoolWorker.fake-provider-main' };

async function waitUntil(fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function makeNodeSnapshot(id: string) {
  return snapshotNode(makeNode(id, 'init'), id);
}

async function withRecorder<T>(f: Fresh, opts: Partial<ConstructorParameters<typeof Recorder>[0]>,
  fn: (rec: Recorder, db: Database) => Promise<T>): Promise<T> {
  const rec = new Recorder({ databaseUri: f.uri, stateDir: f.stateDir, flushIntervalMs: 20, log: captureLog().log, ...opts });
  await rec.start();
  const db = await openDatabase(f.uri, f.stateDir);
  try {
    return await fn(rec, db);
  } finally {
    await rec.stop();
    await db.close();
  }
}

function suite(backend: Backend): void {
  describe(`recorder on ${backend.name}`, () => {
    test('node and request changes give current rows and the full trail in order', async () => {
      const f = await backend.fresh();
      try {
        await withRecorder(f, {}, async (rec, db) => {
          const t0 = Date.now() / 1000;
          let req = makeRequest('200-0000000001', 'requested', { extra: { created_time: t0 - 0.5 } });
          rec.requestChanged(null, req, { launcher: 'zuul' });
          const r1 = withState(req, 'pending');
          rec.requestChanged(req, r1, L);
          req = r1;

          let node: Node = makeNode('0000000001', 'init', { created_time: t0 });
          rec.nodeChanged(null, node, { ...L, reason: 'launch for 200-0000000001' });
          const steps: Node['state'][] = ['building', 'ready'];
          for (const s of steps) {
            const next = withState(node, s);
            rec.nodeChanged(node, next, L);
            node = next;
          }
          rec.launchAttempt({ nodeId: '0000000001', provider: 'fake-provider', pool: 'main', label: 'ubuntu-bionic', attempt: 1,
            startedAt: Date.now() - 900, endedAt: Date.now() - 500, result: 'error.status', error: 'server went to ERROR', launcher: L.launcher });
          rec.launchAttempt({ nodeId: '0000000001', provider: 'fake-provider', pool: 'main', label: 'ubuntu-bionic', attempt: 2,
            startedAt: Date.now() - 400, endedAt: Date.now(), result: 'ready', launcher: L.launcher });
          // an update without a state change: new current row, no event
          const moved = { ...node, public_ipv4: '198.51.100.7', allocated_to: '200-0000000001' };
          rec.nodeChanged(node, moved, L);
          node = moved;
          const r2 = withState(req, 'fulfilled', { nodes: ['0000000001'] });
          rec.requestChanged(req, r2, L);
          rec.requestChanged(r2, null, { launcher: 'zuul' });
          for (const s of ['in-use', 'used', 'deleting', 'deleted'] as const) {
            const next = withState(node, s);
            rec.nodeChanged(node, next, { launcher: s === 'in-use' || s === 'used' ? 'zuul' : L.launcher });
            node = next;
          }
          rec.nodeChanged(node, null, { ...L, reason: 'server deleted' });
          // the launcher's own min-ready request (replacing the used node): counted apart in stats
          const mr = makeRequest('300-0000000002', 'requested', { requestor: MIN_READY_REQUESTOR, reuse: false });
          rec.requestChanged(null, mr, L);
          rec.requestChanged(mr, withState(mr, 'fulfilled', { nodes: ['0000000001'] }), L);
          // the caller may keep mutating its objects: the recorder took a snapshot
          node.state = 'ready';
          assert.ok(await rec.flush(10_000));

          const trail = await queryHistory(db, { node: '0000000001' });
          assert.deepEqual(trail.map((e) => [e.fromState, e.toState]), [
            [null, 'init'], ['init', 'building'], ['building', 'ready'], ['ready', 'in-use'], ['in-use', 'used'],
            ['used', 'deleting'], ['deleting', 'deleted'], ['deleted', null],
          ]);
          assert.equal(trail[0]?.reason, 'launch for 200-0000000001');
          assert.equal(trail[3]?.launcher, 'zuul');
          assert.equal(trail[7]?.reason, 'server deleted');
          for (const e of trail) {
            assert.equal(e.label, 'ubuntu-bionic');
            assert.equal(e.provider, 'fake-provider');
          }

          const row = await db.knex('nodes').where('id', '0000000001').first();
          assert.equal(row.state, 'deleted');
          assert.equal(row.public_ipv4, '198.51.100.7');
          assert.equal(row.allocated_to, '200-0000000001');
          assert.equal(row.external_id, 'srv-0000000001');
          assert.ok(row.deleted_at >= t0);
          assert.ok(row.ready_at >= t0 && row.in_use_at >= row.ready_at);
          assert.equal(row.created_time, t0);

          const rrow = await db.knex('requests').where('id', '200-0000000001').first();
          assert.equal(rrow.state, 'fulfilled');
          assert.equal(rrow.priority, 200);
          assert.equal(rrow.labels, 'ubuntu-bionic');
          assert.equal(rrow.nodes, '0000000001');
          assert.equal(rrow.created_at, t0 - 0.5, 'created_time sent by the requestor');
          assert.ok(rrow.latency_ms >= 500, `latency ${rrow.latency_ms}`);
          assert.ok(rrow.deleted_at !== null);
          const revents = await db.knex('request_events').where('request_id', '200-0000000001').orderBy('id');
          assert.deepEqual(revents.map((e: { from_state: string | null; to_state: string | null }) => [e.from_state, e.to_state]),
            [[null, 'requested'], ['requested', 'pending'], ['pending', 'fulfilled'], ['fulfilled', null]]);

          const attempts = await db.knex('launch_attempts').where('node_id', '0000000001').orderBy('attempt');
          assert.deepEqual(attempts.map((a: { result: string }) => a.result), ['error.status', 'ready']);
          assert.equal(attempts[0].error, 'server went to ERROR');

          const deleted = await queryDeletedNodes(db);
          assert.deepEqual(deleted.map((d) => [d.id, d.lastState]), [['0000000001', 'deleted']]);

          const stats = await queryStats(db);
          assert.equal(stats.rows.length, 1);
          const s = stats.rows[0];
          assert.ok(s);
          assert.equal(s.label, 'ubuntu-bionic');
          assert.equal(s.provider, 'fake-provider');
          assert.equal(s.launched, 1);
          assert.equal(s.ready, 1);
          assert.equal(s.failedAttempts, 1);
          assert.equal(s.requests, 1, 'the min-ready request is not counted as demand');
          assert.equal(s.fulfilled, 1);
          assert.equal(s.minReadyRequests, 1);
          assert.ok(s.launchP50 !== null && s.launchP50 >= 0);
          assert.ok(s.fulfilP95 !== null && s.fulfilP95 >= 0.5);
          assert.ok(s.readyBeforeUseP50 !== null);
        });
      } finally {
        await f.cleanup();
      }
    });

    test('thousands of events over many batches arrive complete and in order', async () => {
      const f = await backend.fresh();
      try {
        await withRecorder(f, { batchSize: 97 }, async (rec, db) => {
          const states: Node['state'][] = ['init', 'building', 'ready', 'in-use', 'used', 'deleting'];
          const expected: string[] = [];
          for (let i = 0; i < 400; i++) {
            const id = String(i).padStart(10, '0');
            let prev: Node | null = null;
            for (const s of states) {
              const next: Node = makeNode(id, s, { provider: i % 2 ? 'p-odd' : 'p-even' });
              rec.nodeChanged(prev, next, L);
              expected.push(`${id}:${s}`);
              prev = next;
            }
          }
          assert.ok(await rec.flush(30_000));
          const rows = await db.knex('node_events').select('node_id', 'to_state').orderBy('id');
          assert.equal(rows.length, expected.length);
          assert.deepEqual(rows.map((r: { node_id: string; to_state: string }) => `${r.node_id}:${r.to_state}`), expected);
          const current = await db.knex('nodes').count({ n: '*' }).first();
          assert.equal(Number(current?.n), 400);
          assert.equal(rec.status().written, expected.length);
          const byProvider = await queryHistory(db, { provider: 'p-odd', since: 0 });
          assert.equal(byProvider.length, expected.length / 2);
          const last = await queryHistory(db, { label: 'ubuntu-bionic', limit: 5 });
          assert.deepEqual(last.map((e) => e.toState), ['init', 'building', 'ready', 'in-use', 'used', 'deleting'].slice(1));
        });
      } finally {
        await f.cleanup();
      }
    });

    test('image builds and uploads keep their state and durations', async () => {
      const f = await backend.fresh();
      try {
        await withRecorder(f, {}, async (rec, db) => {
          const t = Date.now() / 1000;
          const b: ImageBuild = { id: '0000000003', image: 'ubuntu-bionic', state: 'building', state_time: t - 60, builder: 'nb01',
            builder_id: 'uuid-1', formats: [], username: 'zuul' };
          rec.buildChanged(null, b);
          const b2: ImageBuild = { ...b, state: 'ready', state_time: t, formats: ['vhd', 'qcow2'] };
          rec.buildChanged(b, b2);
          const u: ImageUpload = { id: '0000000001', image: 'ubuntu-bionic', build_id: '0000000003', provider: 'fake-provider',
            state: 'uploading', state_time: t, external_id: null, external_name: 'ubuntu-bionic-1', format: 'qcow2', username: 'zuul' };
          rec.uploadChanged(null, u);
          rec.uploadChanged(u, { ...u, state: 'ready', state_time: t + 30, external_id: 'img-1' });
          assert.ok(await rec.flush());
          const build = await db.knex('image_builds').first();
          assert.equal(build.state, 'ready');
          assert.equal(build.formats, 'qcow2,vhd');
          assert.equal(build.duration_s, 60);
          const up = await db.knex('image_uploads').first();
          assert.equal(up.state, 'ready');
          assert.equal(up.external_id, 'img-1');
          assert.equal(up.duration_s, 30);
        });
      } finally {
        await f.cleanup();
      }
    });

    test('retention deletes history older than retentionDays and keeps the rest', async () => {
      const f = await backend.fresh();
      try {
        const db = await openDatabase(f.uri, f.stateDir);
        const old = Date.now() / 1000 - 10 * 86_400;
        await db.knex('node_events').insert({ uid: 'old-1', node_id: '0000000099', from_state: null, to_state: 'init', at: old });
        await db.knex('nodes').insert({ id: '0000000099', state: 'deleted', deleted_at: old, updated_at: old });
        await db.close();
        await withRecorder(f, { retentionDays: 7 }, async (rec, db2) => {
          rec.nodeChanged(null, makeNode('0000000100', 'init'), L);
          assert.ok(await rec.flush());
          for (let i = 0; i < 100; i++) {
            const n = await db2.knex('node_events').where('uid', 'old-1').count({ n: '*' }).first();
            if (Number(n?.n) === 0) break;
            await new Promise((r) => setTimeout(r, 50));
          }
          assert.deepEqual((await db2.knex('node_events').select('node_id')).map((r: { node_id: string }) => r.node_id), ['0000000100']);
          assert.deepEqual((await db2.knex('nodes').select('id')).map((r: { id: string }) => r.id), ['0000000100']);
        });
      } finally {
        await f.cleanup();
      }
    });

    test('retention of a large backlog goes in slices between batches, even while events keep coming', async () => {
      const f = await backend.fresh();
      try {
        const db = await openDatabase(f.uri, f.stateDir);
        const old = Date.now() / 1000 - 10 * 86_400;
        const rows = Array.from({ length: 5000 }, (_, i) => ({ uid: `old-${i}`, node_id: '0000000099', from_state: null, to_state: 'init', at: old }));
        for (let i = 0; i < rows.length; i += 500) await db.knex('node_events').insert(rows.slice(i, i + 500));
        // a budget used up ends a pass after its slice: the rest is for the next call
        assert.deepEqual(await pruneHistory(db.knex, old + 1, 1000, 0), { deleted: 1000, complete: false });
        await db.close();
        const cap = captureLog();
        // one slice (2,000 rows) per step: the 4,000 old rows left take two, between batches
        await withRecorder(f, { retentionDays: 7, retentionSliceMs: 0, log: cap.log }, async (rec, db2) => {
          let i = 0;
          const busy = setInterval(() => { rec.nodeChanged(null, makeNode(String(1000 + (i++)).padStart(10, '0'), 'init'), L); }, 5);
          const done = () => cap.lines.filter((l) => l.msg.startsWith('retention: deleted'));
          try {
            await waitUntil(async () => done().length > 0);
          } finally {
            clearInterval(busy);
          }
          assert.ok(await rec.flush());
          assert.equal(Number((await db2.knex('node_events').where('at', '<', old + 1).count({ n: '*' }).first())?.n), 0);
          assert.equal(done().length, 1, cap.text());
          assert.match(done()[0]?.msg ?? '', /^retention: deleted 4000 history rows older than /);
          assert.ok(Number((await db2.knex('node_events').count({ n: '*' }).first())?.n) >= i);
        });
      } finally {
        await f.cleanup();
      }
    });

    test('an event the database refuses is dropped alone; the rest of its batch is written',
      { skip: backend.name === 'sqlite' ? 'SQLite stores any value in any column' : false }, async () => {
        const f = await backend.fresh();
        try {
          const cap = captureLog();
          await withRecorder(f, { log: cap.log }, async (rec, db) => {
            rec.nodeChanged(null, makeNode('0000000001', 'ready'), L);
            // out of BIGINT range: strict MySQL refuses the row
            rec.nodeChanged(null, makeNode('0000000002', 'hold', { hold_expiration: 1e300 }), L);
            rec.nodeChanged(null, makeNode('0000000003', 'ready'), L);
            assert.ok(await rec.flush());
            const ids = (await db.knex('node_events').select('node_id').orderBy('id')).map((r: { node_id: string }) => r.node_id);
            assert.deepEqual(ids, ['0000000001', '0000000003']);
            assert.equal(rec.status().dropped, 1);
            assert.ok(cap.lines.some((l) => l.level === 'error' && /refused a node event/.test(l.msg)), cap.text());
            // later events still flow
            rec.nodeChanged(null, makeNode('0000000004', 'ready'), L);
            assert.ok(await rec.flush());
            assert.equal(Number((await db.knex('node_events').count({ n: '*' }).first())?.n), 3);
          });
        } finally {
          await f.cleanup();
        }
      });

    test('stop() writes what is still queued', async () => {
      const f = await backend.fresh();
      try {
        const rec = new Recorder({ databaseUri: f.uri, stateDir: f.stateDir, flushIntervalMs: 60_000, batchSize: 100_000, log: captureLog().log });
        await rec.start();
        for (let i = 0; i < 50; i++) rec.nodeChanged(null, makeNode(`s${i}`, 'ready'), L);
        await rec.stop();
        // recording after stop is ignored, never thrown
        rec.nodeChanged(null, makeNode('late', 'ready'), L);
        const db = await openDatabase(f.uri, f.stateDir);
        const n = await db.knex('node_events').count({ n: '*' }).first();
        assert.equal(Number(n?.n), 50);
        await db.close();
      } finally {
        await f.cleanup();
      }
    });

    test('each step starts where the last recorded one ended, whatever a cache showed as prev', async () => {
      const f = await backend.fresh();
      try {
        await withRecorder(f, {}, async (rec, db) => {
          const init = makeNode('c1', 'init');
          const building = withState(init, 'building');
          const building2 = { ...building, external_id: 'srv-2' };
          const ready = withState(building2, 'ready');
          rec.nodeChanged(null, init, L);
          rec.nodeChanged(null, building, L); // the cache did not show the node yet
          rec.nodeChanged(building, building2, L); // building again: no step
          rec.nodeChanged(ready, ready, L); // the cache already showed the write being recorded
          const inUse = withState(ready, 'in-use');
          rec.noteNodeState('c1', 'in-use'); // a client's change, recorded elsewhere
          rec.nodeChanged(ready, withState(inUse, 'deleting'), L);
          assert.ok(await rec.flush());
          // a request removed after the cache last read it as `requested` (its `fulfilled` with its
          // node was recorded by the launcher that wrote it): the row keeps what was recorded
          const req = makeRequest('200-0000000009', 'requested');
          rec.requestChanged(null, req, L);
          rec.requestChanged(req, withState(req, 'fulfilled', { nodes: ['c1'] }), L);
          assert.ok(await rec.flush());
          rec.requestChanged(req, null, { launcher: null, reason: 'deleted by its requestor' });
          rec.nodeChanged(withState(inUse, 'deleting'), null, L);
          assert.ok(await rec.flush());
          const trail = (await db.knex('node_events').where('node_id', 'c1').orderBy('id').select('from_state', 'to_state'))
            .map((e: { from_state: string | null; to_state: string | null }) => `${e.from_state ?? '∅'}>${e.to_state ?? '∅'}`);
          assert.deepEqual(trail, ['∅>init', 'init>building', 'building>ready', 'in-use>deleting', 'deleting>∅']);
          const rtrail = (await db.knex('request_events').orderBy('id').select('from_state', 'to_state'))
            .map((e: { from_state: string | null; to_state: string | null }) => `${e.from_state ?? '∅'}>${e.to_state ?? '∅'}`);
          assert.deepEqual(rtrail, ['∅>requested', 'requested>fulfilled', 'fulfilled>∅']);
          const row = await db.knex('requests').where('id', '200-0000000009').first();
          assert.equal(row.state, 'fulfilled');
          assert.equal(row.nodes, 'c1');
          assert.notEqual(row.deleted_at, null);
          assert.notEqual(row.latency_ms, null);
          const node = await db.knex('nodes').where('id', 'c1').first();
          assert.equal(node.state, 'deleting');
          assert.equal(node.external_id, 'srv-2');
          assert.notEqual(node.deleted_at, null);
        });
      } finally {
        await f.cleanup();
      }
    });

    test('a schema migration longer than the write timeout is not cut (it has no time limit by default)', async () => {
      const f = await backend.fresh();
      const cap = captureLog();
      // a migration that runs 1.5 s on the server (MariaDB: a statement that a cut connection fails)
      const slow: Migration = {
        name: '002_slow_test_migration',
        async up(knex) {
          if (backend.name === 'sqlite') await new Promise((r) => setTimeout(r, 1500));
          else await knex.raw('SELECT SLEEP(1.5)');
          await knex.schema.createTable('slow_migration_done', (t) => t.integer('x'));
        },
      };
      const migrations = [...MIGRATIONS, slow];
      const rec = new Recorder({ databaseUri: f.uri, stateDir: f.stateDir, flushIntervalMs: 20, log: cap.log, writeTimeoutMs: 300,
        maxBackoffMs: 300, migrations });
      let db: Database | null = null;
      try {
        // flush() while start() is still migrating waits for the writer instead of giving up
        const starting = rec.start();
        rec.nodeChanged(null, makeNode('m1', 'ready'), L);
        assert.ok(await rec.flush(20_000), JSON.stringify(rec.status()));
        await starting;
        assert.ok(rec.status().connected);
        db = await openDatabase(f.uri, f.stateDir, { migrations });
        assert.ok(await db.knex.schema.hasTable('slow_migration_done'));
        const applied = await db.knex(MIGRATIONS_TABLE).where('name', slow.name).count({ n: '*' }).first();
        assert.equal(Number(applied?.n), 1);
        assert.equal(Number((await db.knex('node_events').count({ n: '*' }).first())?.n), 1);
        // migrated in one go: never timed out, never retried
        assert.ok(!cap.lines.some((l) => l.level === 'error' || /timed out|still failing/.test(l.msg)), cap.text());
        assert.equal(cap.lines.filter((l) => /schema migrated from version 0 to 2/.test(l.msg)).length, 1, cap.text());
      } finally {
        await rec.stop();
        await db?.close();
        await f.cleanup();
      }
    });
  });
}

test('record calls never throw, even for malformed objects', () => {
  const dir = tempDir();
  const rec = new Recorder({ databaseUri: null, stateDir: dir.dir, log: captureLog().log });
  const bad = { id: '1', state: 'ready', type: 'not-a-list' } as unknown as Node;
  assert.doesNotThrow(() => rec.nodeChanged(null, bad, L));
  assert.doesNotThrow(() => rec.nodeChanged(null, null, L));
  assert.doesNotThrow(() => rec.requestChanged(null, { id: '5-1' } as never, L));
  assert.doesNotThrow(() => rec.launchAttempt({} as never));
  assert.equal(rec.status().enqueued, 1, 'the bare-string type is wrapped; the broken request is not recorded');
  dir.remove();
});

test('a spill file left by a crash is written first; unreadable lines are a recorded gap', async () => {
  const dir = tempDir();
  try {
    // what an earlier run left: two good events, a line cut by the crash in the middle, one more
    // good event, and a last line without its newline
    const ev = (uid: string, id: string, to: string) => JSON.stringify({
      kind: 'node', uid, at: Date.now() / 1000 - 60, removed: false, from: null, to, transition: true,
      launcher: 'nl-old', reason: null, node: { ...makeNodeSnapshot(id), state: to },
    });
    writeFileSync(join(dir.dir, SPILL_FILE), [ev('old-1', 'x1', 'init'), ev('old-2', 'x1', 'building'), '{"kind":"node","uid":"old-3",',
      ev('old-4', 'x1', 'ready'), '{"kind":"no'].join('\n'));
    const cap = captureLog();
    await withRecorder({ uri: null, stateDir: dir.dir, cleanup: async () => undefined }, { log: cap.log }, async (rec, db) => {
      rec.nodeChanged(null, makeNode('x2', 'ready'), L);
      assert.ok(await rec.flush());
      const rows = await db.knex('node_events').select('uid', 'node_id', 'to_state').orderBy('id');
      assert.deepEqual(rows.map((r: { node_id: string; to_state: string }) => `${r.node_id}:${r.to_state}`), ['x1:init', 'x1:building', 'x1:ready', 'x2:ready']);
      assert.ok(!existsSync(join(dir.dir, SPILL_FILE)));
      for (let i = 0; i < 100 && !cap.lines.some((l) => /history incomplete/.test(l.msg)); i++) await new Promise((r) => setTimeout(r, 20));
      const gaps = await queryGaps(db);
      assert.equal(gaps.length, 1);
      assert.equal(gaps[0]?.dropped, 2);
      assert.match(gaps[0]?.reason ?? '', /unreadable lines in the spill file/);
      assert.ok(cap.lines.some((l) => /not yet written by an earlier run/.test(l.msg)));
    });
  } finally {
    dir.remove();
  }
});

test('percentile is nearest-rank', () => {
  assert.equal(percentile([], 50), null);
  assert.equal(percentile([3, 1, 2], 50), 2);
  assert.equal(percentile([1, 2, 3, 4], 50), 2);
  assert.equal(percentile(Array.from({ length: 100 }, (_, i) => i + 1), 95), 95);
  assert.equal(percentile([7], 95), 7);
});

onEachDatabase((name, fresh) => suite({ name, fresh }), (serverUri) => {
  test('a recorder that stops closes its connections cleanly (no "Aborted connection" in the server log)', async () => {
    const db = await freshMysqlDatabase(serverUri());
    const d = tempDir();
    try {
      const rec = new Recorder({ databaseUri: db.uri, stateDir: d.dir, flushIntervalMs: 20, log: captureLog().log });
      await rec.start();
      rec.nodeChanged(null, makeNode('0000000001', 'building'), L);
      assert.equal(await rec.flush(), true);
      await rec.stop();
      const reader = await openDatabase(db.uri, d.dir);
      let logFile: string;
      try {
        const rows = await reader.knex.raw('SELECT @@log_error AS f, @@datadir AS d');
        const r = (rows as unknown as [{ f: string; d: string }[]])[0][0] as { f: string; d: string };
        logFile = r.f.startsWith('/') ? r.f : join(r.d, r.f);
      } finally {
        await reader.close();
      }
      // the server writes the warning when it notices the dropped socket
      await new Promise((res) => setTimeout(res, 300));
      const aborted = readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('Aborted connection') && l.includes(`'${db.name}'`));
      assert.deepEqual(aborted, []);
    } finally {
      await db.drop();
      d.remove();
    }
  });
});
