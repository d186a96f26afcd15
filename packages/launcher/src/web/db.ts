// The web API's own tables (tokens, leases) in the launcher's database, with their own knex
// migration stream (`knex_migrations_web`): the history schema (core/db) and ours evolve
// independently and never see each other's migration names.
import type { Knex } from 'knex';
import { openDatabase, type Database } from '@nodepool-ts/core/db';
import type { Config } from '@nodepool-ts/core/config';

export const WEB_MIGRATIONS_TABLE = 'knex_migrations_web';
export const WEB_MIGRATIONS_LOCK_TABLE = `${WEB_MIGRATIONS_TABLE}_lock`;

export interface WebMigration {
  name: string;
  up(knex: Knex): Promise<void>;
}

async function createIfMissing(knex: Knex, table: string, build: (t: Knex.CreateTableBuilder) => void): Promise<void> {
  if (await knex.schema.hasTable(table)) return;
  await knex.schema.createTable(table, build);
}

// Times are Unix seconds as DOUBLE, like the history tables.
const tokensAndLeases: WebMigration = {
  name: 'web_001_tokens_leases',
  async up(knex) {
    await createIfMissing(knex, 'tokens', (t) => {
      /** the public part of the token (`np_<id>_<secret>`), used to find the row */
      t.string('id', 32).primary();
      t.string('name', 191).notNullable().unique('tokens_name');
      /** sha256 (hex) of the secret part; the secret itself is never stored */
      t.string('hash', 64).notNullable();
      t.double('created_at').notNullable();
      t.double('expires_at').nullable();
      t.double('revoked_at').nullable();
      t.double('last_used_at').nullable();
      /** per-token override of the nodes it may hold at once; null = the web app's default */
      t.integer('max_nodes').nullable();
    });
    await createIfMissing(knex, 'leases', (t) => {
      t.string('id', 40).primary();
      t.string('token_id', 32).notNullable();
      t.string('token_name', 191).notNullable();
      t.string('state', 16).notNullable();
      /** JSON object {label: count} as requested */
      t.text('labels').notNullable();
      t.integer('node_count').notNullable();
      t.string('request_id', 64).nullable();
      /** JSON array of node ids, in node_types order */
      t.text('node_ids').nullable();
      /** JSON array: what the lease handed out (addresses, username, port, host keys) */
      t.text('nodes').nullable();
      /** hostname of the launcher holding the node locks */
      t.string('owner', 255).notNullable();
      t.integer('ttl').notNullable();
      t.string('comment', 255).nullable();
      t.double('created_at').notNullable();
      t.double('fulfilled_at').nullable();
      t.double('expires_at').notNullable();
      t.double('ended_at').nullable();
      t.text('error').nullable();
      t.double('updated_at').notNullable();
      t.index(['state', 'expires_at'], 'leases_state_expires');
      t.index(['token_id', 'state'], 'leases_token_state');
    });
  },
};

/**
 * What a token may change: `scopes` is a JSON array of scope names. Tokens created before
 * scopes existed could only lease, so the column's default (which existing rows take) is
 * `["leases"]`. A VARCHAR, not TEXT: MySQL before 8.0.13 allows no default on TEXT columns.
 */
export const DEFAULT_SCOPES_JSON = '["leases"]';

const tokenScopes: WebMigration = {
  name: 'web_002_token_scopes',
  async up(knex) {
    if (!(await knex.schema.hasColumn('tokens', 'scopes'))) {
      await knex.schema.alterTable('tokens', (t) => {
        t.string('scopes', 255).notNullable().defaultTo(DEFAULT_SCOPES_JSON);
      });
    }
    // (rows the ALTER did not fill, on an engine that leaves them null)
    await knex('tokens').whereNull('scopes').update({ scopes: DEFAULT_SCOPES_JSON });
  },
};

export const WEB_MIGRATIONS: readonly WebMigration[] = [tokensAndLeases, tokenScopes];

class Source implements Knex.MigrationSource<WebMigration> {
  constructor(private readonly list: readonly WebMigration[]) {}
  getMigrations(): Promise<WebMigration[]> { return Promise.resolve([...this.list]); }
  getMigrationName(m: WebMigration): string { return m.name; }
  getMigration(m: WebMigration): Promise<Knex.Migration> {
    return Promise.resolve({
      up: (k: Knex) => m.up(k),
      // knex insists on a down; nodepool-ts never migrates down (a newer schema is refused)
      down: () => Promise.reject(new Error(`${m.name}: migrating down is not supported`)),
    });
  }
}

async function tableRace(knex: Knex, name: string, build: (t: Knex.CreateTableBuilder) => void): Promise<void> {
  if (await knex.schema.hasTable(name)) return;
  try {
    await knex.schema.createTable(name, build);
  } catch (err) {
    // two launchers starting together: the loser's CREATE fails, the table is there
    if (!(await knex.schema.hasTable(name))) throw err;
  }
}

/**
 * Apply our migrations (`migrations`: a prefix of them, for tests of an older schema). knex's bookkeeping tables are created up front with a fixed lock row
 * (knex's own check-then-insert can leave two lock rows when two daemons start together).
 */
export async function migrateWeb(knex: Knex, migrations: readonly WebMigration[] = WEB_MIGRATIONS): Promise<string[]> {
  await tableRace(knex, WEB_MIGRATIONS_TABLE, (t) => {
    t.increments();
    t.string('name');
    t.integer('batch');
    t.timestamp('migration_time');
  });
  await tableRace(knex, WEB_MIGRATIONS_LOCK_TABLE, (t) => {
    t.increments('index').primary();
    t.integer('is_locked');
  });
  await knex(WEB_MIGRATIONS_LOCK_TABLE).insert({ index: 1, is_locked: 0 }).onConflict('index').ignore();
  let delay = 50;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const [, applied] = await knex.migrate.latest({ migrationSource: new Source(migrations), tableName: WEB_MIGRATIONS_TABLE }) as [number, string[]];
      return applied;
    } catch (err) {
      const locked = err instanceof Error && (err.name === 'MigrationLocked' || /already locked|SQLITE_BUSY/i.test(err.message));
      if (!locked || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 1000);
    }
  }
}

/** Open the configured database (history schema migrated by core/db) and bring our tables up. */
export async function openWebDatabase(config: Pick<Config, 'databaseUri' | 'stateDir'>): Promise<Database> {
  const db = await openDatabase(config.databaseUri, config.stateDir);
  try {
    await migrateWeb(db.knex);
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  return db;
}
