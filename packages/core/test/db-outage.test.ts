// The Recorder when MariaDB misbehaves: hung (SIGSTOP), stopped and restarted, down at start,
// wrong password; the spill file; reconciliation from a ZooKeeper snapshot after lost history.
// These tests stop and freeze the server, so they always use a private MariaDB of their own.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Recorder, SPILL_FILE, openDatabase, queryGaps, type RecorderOptions } from '../src/db/index.js';
import type { Node } from '../src/model/types.js';
import { PrivateMariaDb, captureLog, freshMysqlDatabase, makeNode, mariadbAvailable, tempDir } from './db-fixtures.js';

const L = { launcher: 'nl01-1-PoolWorker.fake-provider-main' };

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Record `count` node events (a node each, walking init → building → ready ...), returning their order. */
function record(rec: Recorder, prefix: string, count: number): string[] {
  const states: Node['state'][] = ['init', 'building', 'ready', 'in-use', 'used'];
  const order: string[] = [];
  let prev: Node | null = null;
  for (let i = 0; i < count; i++) {
    const s = states[i % states.length] ?? 'init';
    if (i % states.length === 0) prev = null;
    const next = makeNode(`${prefix}${Math.floor(i / states.length)}`, s);
    rec.nodeChanged(prev, next, L);
    order.push(`${next.id}:${s}`);
    prev = next;
  }
  return order;
}

async function trail(uri: string, dir: string): Promise<string[]> {
  const db = await openDatabase(uri, dir);
  try {
    const rows = await db.knex('node_events').select('node_id', 'to_state').orderBy('id');
    return rows.map((r: { node_id: string; to_state: string }) => `${r.node_id}:${r.to_state}`);
  } finally {
    await db.close();
  }
}

/** What a failed assertion on the recorder should show: its status and everything it logged. */
function diag(rec: Recorder, cap: { text(): string }): string {
  return `status ${JSON.stringify(rec.status())}\nlog:\n${cap.text()}`;
}

// Short waits so outages are noticed and retried quickly; the write timeout still leaves a
// loaded 2-core machine room for a batch that is merely slow (a false outage would add log lines).
const fast: Partial<RecorderOptions> = { flushIntervalMs: 20, maxBackoffMs: 300, writeTimeoutMs: 4000, stopTimeoutMs: 2000 };

describe('recorder through MariaDB outages', { skip: !mariadbAvailable() }, () => {
  const server = new PrivateMariaDb();
  before(() => { server.start(); });
  after(() => server.destroy());

  async function fresh(): Promise<{ uri: string; dir: string; cleanup(): Promise<void> }> {
    if (server.start() === '') throw new Error('no server');
    const db = await freshMysqlDatabase(server.uri);
    const d = tempDir();
    // Migrate before the recorder starts: these tests are about outages, and on a loaded machine
    // creating the schema can take longer than the short write timeout below, which then cuts
    // every attempt (the recorder would report a database that "did not answer").
    const migrated = await openDatabase(db.uri, d.dir);
    await migrated.close();
    return { uri: db.uri, dir: d.dir, cleanup: async () => { server.start(); await db.drop(); d.remove(); } };
  }

  test('hung server (SIGSTOP): events queue, one error, then all written in order with one info line', async () => {
    const f = await fresh();
    const cap = captureLog();
    const rec = new Recorder({ databaseUri: f.uri, stateDir: f.dir, log: cap.log, ...fast });
    try {
      await rec.start();
      const expected = record(rec, 'a', 100);
      assert.ok(await rec.flush(), diag(rec, cap));
      server.freeze();
      try {
        expected.push(...record(rec, 'b', 300));
        await waitFor('the outage to be noticed', () => rec.status().outageSince !== null);
        expected.push(...record(rec, 'c', 100));
      } finally {
        server.thaw();
      }
      assert.ok(await rec.flush(30_000), diag(rec, cap));
      assert.deepEqual(await trail(f.uri, f.dir), expected);
      // one error when the outage begins, one info line when it is over (and nothing in between)
      const errors = cap.lines.filter((l) => l.level === 'error');
      const back = cap.lines.filter((l) => l.level === 'info' && /is back after/.test(l.msg));
      assert.ok(errors.length >= 1, cap.text());
      assert.equal(errors.length, back.length, cap.text());
      assert.match(errors[0]?.msg ?? '', /recorder cannot write history: database mysql:\/\/nodepool@127\.0\.0\.1:\d+\/nodepool_t\w+ did not answer/);
      assert.match(back[0]?.msg ?? '', /wrote \d+ events queued meanwhile/);
      const password = new URL(f.uri).password;
      assert.ok(!cap.text().includes(password), 'the password never reaches the log');
    } finally {
      await rec.stop();
      await f.cleanup();
    }
  });

  test('server stopped and restarted: the spill file takes the overflow, then everything is written in order', async () => {
    const f = await fresh();
    const cap = captureLog();
    const rec = new Recorder({ databaseUri: f.uri, stateDir: f.dir, log: cap.log, maxQueue: 20, ...fast, batchSize: 10 });
    try {
      await rec.start();
      const expected = record(rec, 'a', 50);
      assert.ok(await rec.flush(), diag(rec, cap));
      server.stop();
      expected.push(...record(rec, 'b', 400));
      const spill = join(f.dir, SPILL_FILE);
      await waitFor('the spill file', () => existsSync(spill) && statSync(spill).size > 0);
      assert.ok(rec.status().queued <= 400, 'memory stays near its bound');
      await waitFor('the outage to be noticed', () => rec.status().outageSince !== null);
      expected.push(...record(rec, 'c', 60));
      server.start();
      assert.ok(await rec.flush(30_000), diag(rec, cap));
      assert.deepEqual(await trail(f.uri, f.dir), expected);
      assert.ok(!existsSync(spill), 'the spill file is removed once written');
      assert.equal(rec.status().dropped, 0);
      const errors = cap.lines.filter((l) => l.level === 'error');
      assert.ok(errors.length >= 1, cap.text());
      assert.equal(errors.length, cap.lines.filter((l) => /is back after/.test(l.msg)).length, cap.text());
      assert.ok(cap.lines.some((l) => l.level === 'warn' && /spilling the oldest/.test(l.msg)));
    } finally {
      await rec.stop();
      await f.cleanup();
    }
  });

  test('database down at start: the recorder starts anyway and catches up', async () => {
    const f = await fresh();
    const cap = captureLog();
    server.stop();
    const rec = new Recorder({ databaseUri: f.uri, stateDir: f.dir, log: cap.log, ...fast });
    try {
      await rec.start();
      const expected = record(rec, 'd', 40);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(rec.status().written, 0);
      server.start();
      assert.ok(await rec.flush(30_000), diag(rec, cap));
      assert.deepEqual(await trail(f.uri, f.dir), expected);
      assert.match(cap.lines.find((l) => l.level === 'error')?.msg ?? '', /unreachable as nodepool@127\.0\.0\.1/);
    } finally {
      await rec.stop();
      await f.cleanup();
    }
  });

  test('stopped during an outage: queued events survive in the spill file and a new recorder writes them', async () => {
    const f = await fresh();
    const cap1 = captureLog();
    const rec1 = new Recorder({ databaseUri: f.uri, stateDir: f.dir, log: cap1.log, ...fast });
    let expected: string[];
    try {
      await rec1.start();
      expected = record(rec1, 'a', 10);
      assert.ok(await rec1.flush(), diag(rec1, cap1));
      server.stop();
      expected.push(...record(rec1, 'b', 90));
    } catch (err) {
      // a writer left running would keep the test process alive
      await rec1.stop();
      await f.cleanup();
      throw err;
    }
    await rec1.stop();
    assert.ok(existsSync(join(f.dir, SPILL_FILE)));
    server.start();
    const cap = captureLog();
    const rec2 = new Recorder({ databaseUri: f.uri, stateDir: f.dir, log: cap.log, ...fast });
    try {
      await rec2.start();
      expected.push(...record(rec2, 'c', 5));
      assert.ok(await rec2.flush(30_000), diag(rec2, cap));
      assert.deepEqual(await trail(f.uri, f.dir), expected);
      assert.ok(cap.lines.some((l) => /not yet written by an earlier run/.test(l.msg)));
    } finally {
      await rec2.stop();
      await f.cleanup();
    }
  });

  test('history lost past the spill cap: current rows reconciled from the snapshot, gap recorded', async () => {
    const f = await fresh();
    const cap = captureLog();
    let snapshot: { nodes: Node[]; requests: [] } = { nodes: [], requests: [] };
    const rec = new Recorder({
      databaseUri: f.uri, stateDir: f.dir, log: cap.log, ...fast, maxQueue: 10, batchSize: 5, maxSpillBytes: 4000, launcher: 'nl01',
      reconcile: async () => snapshot,
    });
    try {
      await rec.start();
      const a = makeNode('0000000001', 'ready');
      const b = makeNode('0000000002', 'ready');
      rec.nodeChanged(null, a, L);
      rec.nodeChanged(null, b, L);
      assert.ok(await rec.flush(), diag(rec, cap));
      server.stop();
      // during the outage: a goes in-use, b is deleted, c appears, and lots of noise
      const a2 = { ...a, state: 'in-use' as const };
      rec.nodeChanged(a, a2, L);
      rec.nodeChanged(b, null, L);
      const c = makeNode('0000000003', 'ready');
      rec.nodeChanged(null, c, L);
      record(rec, 'noise', 300);
      await waitFor('events to be dropped', () => rec.status().dropped > 0);
      snapshot = { nodes: [a2, c], requests: [] };
      server.start();
      await waitFor('reconciliation', () => cap.lines.some((l) => /history incomplete/.test(l.msg)), 30_000);
      const db = await openDatabase(f.uri, f.dir);
      try {
        const rows = await db.knex('nodes').whereIn('id', ['0000000001', '0000000002', '0000000003']).orderBy('id');
        assert.deepEqual(rows.map((r: { id: string; state: string; deleted_at: number | null }) => [r.id, r.state, r.deleted_at !== null]), [
          ['0000000001', 'in-use', false],
          ['0000000002', 'ready', true],
          ['0000000003', 'ready', false],
        ]);
        const gaps = await queryGaps(db);
        assert.equal(gaps.length, 1);
        assert.equal(gaps[0]?.dropped, rec.status().dropped);
        assert.match(gaps[0]?.reason ?? '', /spill file full/);
        const warn = cap.lines.find((l) => /history incomplete/.test(l.msg));
        assert.match(warn?.msg ?? '', /\d+ events lost between \d{4}-\d\d-\d\dT.* and \d{4}-.*current rows reconciled from ZooKeeper/);
      } finally {
        await db.close();
      }
    } finally {
      await rec.stop();
      await f.cleanup();
    }
  });

  test('stop() while start() is still connecting to a hung server ends cleanly, events kept', async () => {
    const f = await fresh();
    server.freeze();
    const rec = new Recorder({ databaseUri: f.uri, stateDir: f.dir, log: captureLog().log, ...fast, writeTimeoutMs: 5000 });
    try {
      const starting = rec.start();
      record(rec, 's', 7);
      await new Promise((r) => setTimeout(r, 200));
      await rec.stop();
      await starting;
      assert.ok(existsSync(join(f.dir, SPILL_FILE)), 'queued events kept for the next start');
      assert.equal(rec.status().connected, false);
    } finally {
      server.thaw();
      await rec.stop();
      await f.cleanup();
    }
  });

  test('a wrong password: the recorder starts, logs user@host once without the password, keeps the events', async () => {
    const f = await fresh();
    const url = new URL(f.uri);
    url.password = 'NotThePassword42';
    const cap = captureLog();
    const rec = new Recorder({ databaseUri: url.toString(), stateDir: f.dir, log: cap.log, ...fast });
    try {
      await rec.start();
      record(rec, 'w', 5);
      await new Promise((r) => setTimeout(r, 700));
      const errors = cap.lines.filter((l) => l.level === 'error');
      assert.equal(errors.length, 1, cap.text());
      assert.match(errors[0]?.msg ?? '', /access denied for nodepool@127\.0\.0\.1/);
      assert.ok(!cap.text().includes('NotThePassword42'));
      await rec.stop();
      assert.ok(existsSync(join(f.dir, SPILL_FILE)), 'kept for when the password is fixed');
    } finally {
      await rec.stop();
      await f.cleanup();
    }
  });
});
