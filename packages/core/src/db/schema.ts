// The schema, as an ordered list of knex migrations compiled into the code (not files on disk:
// an installed nodepool-ts must not depend on a migrations directory next to it).
//
// Rules for adding a migration: append to MIGRATIONS with the next number, never edit or
// reorder a released one, make `up` tolerate a partially applied previous attempt (MySQL DDL
// commits implicitly, so a failed migration can leave some tables behind), and never write a
// `down`: nodepool-ts refuses to run against a newer schema instead of migrating down.
//
// Times are Unix seconds as DOUBLE, like Nodepool's `state_time`: portable between MySQL and
// SQLite, free of time zone conversions, and directly comparable with the ZooKeeper data.
// Tables `leases` and `tokens` are reserved for the web API and are created by its migrations.
import type { Knex } from 'knex';

export interface Migration {
  /** `NNN_description`; NNN is the schema version this migration brings the database to */
  name: string;
  up(knex: Knex): Promise<void>;
}

async function createIfMissing(knex: Knex, table: string, build: (t: Knex.CreateTableBuilder) => void): Promise<void> {
  if (await knex.schema.hasTable(table)) return;
  await knex.schema.createTable(table, build);
}

// varchar lengths keep composite keys under InnoDB's 3072-byte limit with utf8mb4
const NAME = 191;
const ID = 64;
const STATE = 16;

const initial: Migration = {
  name: '001_initial',
  async up(knex) {
    // current row per node: what ZooKeeper held last, kept after the znode is gone (deleted_at)
    await createIfMissing(knex, 'nodes', (t) => {
      t.string('id', ID).primary();
      t.string('provider', NAME).nullable();
      t.string('pool', NAME).nullable();
      /** labels (`type`), comma-joined */
      t.string('label', 1024).nullable();
      t.string('cloud', NAME).nullable();
      t.string('region', NAME).nullable();
      t.string('az', NAME).nullable();
      t.string('external_id', 255).nullable();
      t.string('hostname', 255).nullable();
      t.string('public_ipv4', 64).nullable();
      t.string('private_ipv4', 64).nullable();
      t.string('public_ipv6', 64).nullable();
      t.string('interface_ip', 64).nullable();
      t.string('image_id', 512).nullable();
      t.string('state', STATE).notNullable();
      t.double('state_time').nullable();
      t.string('allocated_to', ID).nullable();
      t.string('launcher', 255).nullable();
      t.string('hold_job', 512).nullable();
      t.text('comment').nullable();
      t.bigInteger('hold_expiration').nullable();
      t.double('created_time').nullable();
      /** first time the node was seen `ready` / `in-use` (launch time, time ready before use) */
      t.double('ready_at').nullable();
      t.double('in_use_at').nullable();
      t.double('deleted_at').nullable();
      t.double('updated_at').notNullable();
      t.index(['deleted_at'], 'nodes_deleted_at');
      t.index(['created_time'], 'nodes_created_time');
      t.index(['provider'], 'nodes_provider');
    });
    await createIfMissing(knex, 'node_events', (t) => {
      t.bigIncrements('id');
      /** `<recorder run>-<seq>`: makes a replayed batch (retry after a lost commit, spill) a no-op */
      t.string('uid', 48).notNullable().unique('node_events_uid');
      t.string('node_id', ID).notNullable();
      t.string('provider', NAME).nullable();
      t.string('pool', NAME).nullable();
      t.string('label', 1024).nullable();
      /** null: the node appeared (znode created or first seen) */
      t.string('from_state', STATE).nullable();
      /** null: the znode was removed */
      t.string('to_state', STATE).nullable();
      /** when the recorder saw the change (orders the trail) */
      t.double('at').notNullable();
      /** the node's own state_time, as written by whoever changed it */
      t.double('state_time').nullable();
      t.string('launcher', 255).nullable();
      t.text('reason').nullable();
      t.index(['node_id', 'at'], 'node_events_node');
      t.index(['at'], 'node_events_at');
    });
    await createIfMissing(knex, 'requests', (t) => {
      t.string('id', ID).primary();
      t.string('requestor', 255).nullable();
      /** the `<priority>-` prefix of the request id (lower is served first) */
      t.integer('priority').nullable();
      t.integer('relative_priority').notNullable().defaultTo(0);
      /** node_types, comma-joined, order kept */
      t.string('labels', 2048).nullable();
      /** node ids, comma-joined, same order as labels */
      t.text('nodes').nullable();
      /** the provider the requestor preferred */
      t.string('provider', NAME).nullable();
      t.boolean('reuse').notNullable().defaultTo(true);
      t.string('state', STATE).notNullable();
      t.double('state_time').nullable();
      t.text('declined_by').nullable();
      t.string('launcher', 255).nullable();
      /** `created_time` from the requestor when given, else when first seen */
      t.double('created_at').nullable();
      t.double('fulfilled_at').nullable();
      t.double('latency_ms').nullable();
      t.double('deleted_at').nullable();
      t.double('updated_at').notNullable();
      t.index(['created_at'], 'requests_created_at');
      t.index(['deleted_at'], 'requests_deleted_at');
    });
    await createIfMissing(knex, 'request_events', (t) => {
      t.bigIncrements('id');
      t.string('uid', 48).notNullable().unique('request_events_uid');
      t.string('request_id', ID).notNullable();
      t.string('from_state', STATE).nullable();
      t.string('to_state', STATE).nullable();
      t.double('at').notNullable();
      t.double('state_time').nullable();
      t.string('launcher', 255).nullable();
      t.text('reason').nullable();
      t.index(['request_id', 'at'], 'request_events_request');
      t.index(['at'], 'request_events_at');
    });
    await createIfMissing(knex, 'launch_attempts', (t) => {
      t.bigIncrements('id');
      t.string('uid', 48).notNullable().unique('launch_attempts_uid');
      t.string('node_id', ID).notNullable();
      t.string('provider', NAME).nullable();
      t.string('pool', NAME).nullable();
      t.string('label', 1024).nullable();
      t.integer('attempt').notNullable();
      t.double('started_at').notNullable();
      t.double('ended_at').notNullable();
      /** the launcher's result: `ready`, or `error.quota`, `error.status`, ... */
      t.string('result', 32).notNullable();
      t.text('error').nullable();
      t.string('launcher', 255).nullable();
      t.index(['node_id'], 'launch_attempts_node');
      t.index(['started_at'], 'launch_attempts_started_at');
    });
    await createIfMissing(knex, 'image_builds', (t) => {
      t.string('image', NAME).notNullable();
      t.string('build_id', ID).notNullable();
      t.string('state', STATE).notNullable();
      t.double('state_time').nullable();
      t.string('builder', 255).nullable();
      t.string('builder_id', 64).nullable();
      t.string('formats', 255).nullable();
      t.string('username', 255).nullable();
      t.double('created_at').nullable();
      t.double('ready_at').nullable();
      /** seconds from building to ready */
      t.double('duration_s').nullable();
      t.double('deleted_at').nullable();
      t.double('updated_at').notNullable();
      t.primary(['image', 'build_id']);
      t.index(['deleted_at'], 'image_builds_deleted_at');
    });
    await createIfMissing(knex, 'image_uploads', (t) => {
      t.string('image', NAME).notNullable();
      t.string('build_id', ID).notNullable();
      t.string('provider', NAME).notNullable();
      t.string('upload_id', ID).notNullable();
      t.string('state', STATE).notNullable();
      t.double('state_time').nullable();
      t.string('external_id', 255).nullable();
      t.string('external_name', 255).nullable();
      t.string('format', 32).nullable();
      t.string('username', 255).nullable();
      t.double('created_at').nullable();
      t.double('ready_at').nullable();
      /** seconds from uploading to ready */
      t.double('duration_s').nullable();
      t.double('deleted_at').nullable();
      t.double('updated_at').notNullable();
      t.primary(['image', 'build_id', 'provider', 'upload_id']);
      t.index(['deleted_at'], 'image_uploads_deleted_at');
    });
    // stretches of history the recorder knows it lost (spill file full or unreadable)
    await createIfMissing(knex, 'history_gaps', (t) => {
      t.bigIncrements('id');
      t.double('started_at').nullable();
      t.double('ended_at').nullable();
      t.integer('dropped').notNullable();
      t.text('reason').notNullable();
      t.double('recorded_at').notNullable();
      t.string('launcher', 255).nullable();
    });
  },
};

export const MIGRATIONS: readonly Migration[] = [initial];

/** The numeric version a migration name stands for (`012_x` → 12); NaN when not ours. */
export function migrationVersion(name: string): number {
  const m = /^(\d+)_/.exec(name);
  return m?.[1] !== undefined ? Number(m[1]) : Number.NaN;
}

export const CODE_SCHEMA_VERSION = Math.max(...MIGRATIONS.map((m) => migrationVersion(m.name)));
