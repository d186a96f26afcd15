// Database errors. Every message names the database the way an operator wrote it (user, host,
// port, database, or the SQLite file) and never the password, so it can go to logs as is.

/**
 * - `uri`: the database URI cannot be parsed or names an unsupported engine;
 * - `connect`: the server cannot be reached (refused, timeout, DNS, lost connection);
 * - `auth`: the server refused the user/password, or the database does not exist;
 * - `schema-too-new`: the schema was migrated by a newer nodepool-ts; we never migrate down;
 * - `migration-locked`: another process holds the migration lock for too long;
 * - `migration`: a migration failed;
 * - `query`: any other failure of a statement.
 */
export type DatabaseErrorKind =
  | 'uri'
  | 'connect'
  | 'auth'
  | 'schema-too-new'
  | 'migration-locked'
  | 'migration'
  | 'query';

export interface DatabaseErrorContext {
  /** the database, described without password (see describeTarget) */
  database?: string;
  cause?: unknown;
}

export class DatabaseError extends Error {
  readonly code = 'EDATABASE' as const;
  readonly kind: DatabaseErrorKind;
  readonly database: string | null;

  constructor(kind: DatabaseErrorKind, message: string, ctx: DatabaseErrorContext = {}) {
    super(message, ctx.cause === undefined ? undefined : { cause: ctx.cause });
    this.name = 'DatabaseError';
    this.kind = kind;
    this.database = ctx.database ?? null;
  }
}

/** The schema in the database was written by a newer nodepool-ts. */
export class SchemaTooNewError extends DatabaseError {
  readonly databaseVersion: number;
  readonly codeVersion: number;
  readonly unknownMigrations: string[];

  constructor(database: string, databaseVersion: number, codeVersion: number, unknownMigrations: string[]) {
    super('schema-too-new',
      `database schema is at version ${databaseVersion}, this nodepool-ts knows up to ${codeVersion}; ` +
      `upgrade nodepool-ts (database ${database}; unknown migrations: ${unknownMigrations.join(', ')})`,
      { database });
    this.name = 'SchemaTooNewError';
    this.databaseVersion = databaseVersion;
    this.codeVersion = codeVersion;
    this.unknownMigrations = unknownMigrations;
  }
}

export function isDatabaseError(err: unknown): err is DatabaseError {
  return err instanceof DatabaseError;
}
