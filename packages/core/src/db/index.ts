// The database: history and current state of nodes, requests, launches, builds and uploads.
// The launcher and builder record through a Recorder; the CLI and the web API read with the
// query helpers over a Database from openDatabase().
export { DatabaseError, SchemaTooNewError, isDatabaseError } from './errors.js';
export type { DatabaseErrorKind } from './errors.js';
export { parseDatabaseUri, describeTarget, DEFAULT_SQLITE_FILE } from './uri.js';
export type { DatabaseTarget, MysqlTarget, SqliteTarget } from './uri.js';
export {
  Database, openDatabase, openTarget, migrateToLatest, schemaVersion, CODE_SCHEMA_VERSION,
  MIGRATIONS_TABLE, MIGRATIONS_LOCK_TABLE,
} from './connection.js';
export type { OpenOptions, MigrateOptions, MigrationResult } from './connection.js';
export { MIGRATIONS } from './schema.js';
export type { Migration } from './schema.js';
export { Recorder } from './recorder.js';
export type {
  RecorderOptions, RecordContext, LaunchAttemptRecord, RecorderStatus, ReconcileSnapshot,
} from './recorder.js';
export { SPILL_FILE } from './spill.js';
export {
  queryHistory, queryRequestHistory, queryStats, queryDeletedNodes, queryGaps, percentile,
} from './queries.js';
export type {
  HistoryFilter, HistoryEntry, RequestHistoryEntry, StatsRow, StatsReport, DeletedNode, HistoryGap,
} from './queries.js';
