// `nodepool history`: node state transitions recorded by the launchers' Recorder, and
// `nodepool history --deleted` (also exported as deletedNodesCommand): nodes whose znode is gone.
// Reads the database named by the config/secure file; never migrates it (a CLI upgrade must not
// change the schema under running daemons).
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  DatabaseError, openDatabase, parseDatabaseUri, queryDeletedNodes, queryGaps, queryHistory,
  queryRequestHistory, schemaVersion, type Database,
} from '@nodepool-ts/core/db';
import { pythonJson } from '@nodepool-ts/core/model';
import { formatAge } from '@nodepool-ts/core/util';
import type { CliContext } from '../context.js';
import { formatTable } from '../table.js';

const HISTORY_USAGE = `usage: nodepool history [-h] [--node ID | --label LABEL | --provider PROVIDER]
                        [--since DURATION] [--limit N] [--requests | --request ID]
                        [--deleted] [--json]`;

const HISTORY_HELP = `${HISTORY_USAGE}

Show the state transitions of nodes recorded in the database (oldest first).

optional arguments:
  -h, --help           show this help message and exit
  --node ID            only this node
  --label LABEL        only nodes with this label
  --provider PROVIDER  only nodes of this provider
  --since DURATION     only changes in the last DURATION (30s, 15m, 1h, 2d, 1w, 1h30m)
                       or since an ISO 8601 time
  --limit N            the most recent N changes (default 1000; 0 = all)
  --requests           node request transitions instead of nodes
  --request ID         only this node request's transitions
  --deleted            nodes whose znode is gone, most recently deleted first
  --json               print JSON instead of a table
`;

/** Raised for bad arguments; printed argparse-style with exit status 2. */
export class UsageProblem extends Error {
  readonly code = 'EUSAGE' as const;
  constructor(readonly usage: string, message: string) {
    super(message);
    this.name = 'UsageProblem';
  }
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/**
 * `--since`: a duration back from now (`90s`, `30m`, `1h`, `2d`, `1w`, combinations like `1h30m`)
 * or an absolute ISO 8601 time. Returns Unix seconds.
 */
export function parseSince(text: string, now: number): number {
  const t = text.trim();
  if (/^(\d+(\.\d+)?[smhdw])+$/i.test(t)) {
    let secs = 0;
    for (const m of t.matchAll(/(\d+(?:\.\d+)?)([smhdw])/gi)) {
      secs += Number(m[1]) * (UNIT_SECONDS[(m[2] ?? 's').toLowerCase()] ?? 1);
    }
    return now - secs;
  }
  if (/^\d{4}-\d\d-\d\d/.test(t)) {
    const ms = Date.parse(t);
    if (Number.isFinite(ms)) return ms / 1000;
  }
  throw new Error(`invalid --since value '${text}': use a duration like 30m, 1h, 2d or an ISO 8601 time`);
}

export function isoTime(t: number | null): string | null {
  return t === null ? null : new Date(t * 1000).toISOString();
}

/**
 * Open the configured database for reading. Resolves null (after saying so on stderr) when no
 * history exists yet: a SQLite file never created, or a database never migrated.
 */
export async function openHistory(ctx: CliContext): Promise<Database | null> {
  const config = await ctx.loadConfig();
  const target = parseDatabaseUri(config.databaseUri, config.stateDir);
  if (target.engine === 'sqlite' && target.filename !== ':memory:' && !existsSync(target.filename)) {
    ctx.err(`no history recorded yet: ${target.filename} does not exist (the launcher creates it)`);
    return null;
  }
  const db = await openDatabase(config.databaseUri, config.stateDir, { migrate: false });
  if ((await schemaVersion(db.knex)) === 0) {
    ctx.err(`no history recorded yet in ${db.describe()}`);
    await db.close();
    return null;
  }
  return db;
}

/** Run a database-reading command body, turning database errors into messages. */
export async function withHistory(ctx: CliContext, body: (db: Database | null) => Promise<number>): Promise<number> {
  let db: Database | null = null;
  try {
    db = await openHistory(ctx);
    return await body(db);
  } catch (err) {
    if (err instanceof DatabaseError) {
      ctx.err(`nodepool: ${err.message}`);
      return 1;
    }
    throw err;
  } finally {
    await db?.close();
  }
}

/** Parse arguments; a UsageProblem is printed argparse-style and becomes exit status 2. */
export function parsedOrUsage<T>(ctx: CliContext, fn: () => T): T | number {
  try {
    return fn();
  } catch (err) {
    if (err instanceof UsageProblem) {
      ctx.err(`${err.usage}\nnodepool: error: ${err.message}`);
      return 2;
    }
    throw err;
  }
}

function sinceOf(value: string | undefined, ctx: CliContext, usage: string): number | null {
  if (value === undefined) return null;
  try {
    return parseSince(value, ctx.now());
  } catch (err) {
    throw new UsageProblem(usage, err instanceof Error ? err.message : String(err));
  }
}

function parse<T extends Record<string, { type: 'string' | 'boolean' }>>(argv: string[], usage: string, options: T) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' } }, strict: true, allowPositionals: false });
  } catch (err) {
    throw new UsageProblem(usage, err instanceof Error ? err.message.split('\n')[0] ?? err.message : String(err));
  }
}

function limitOf(value: string | undefined, usage: string): number {
  if (value === undefined) return 1000;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageProblem(usage, `argument --limit: invalid value '${value}'`);
  return n;
}

async function warnGaps(ctx: CliContext, db: Database, since: number | null): Promise<void> {
  for (const g of await queryGaps(db)) {
    if (since !== null && g.endedAt !== null && g.endedAt < since) continue;
    ctx.err(`warning: history incomplete: ${g.dropped} events lost between ${isoTime(g.startedAt) ?? 'unknown'} and ` +
      `${isoTime(g.endedAt) ?? 'unknown'} (${g.reason})`);
  }
}

export async function historyCommand(argv: string[], ctx: CliContext): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    ctx.out(HISTORY_HELP.trimEnd());
    return 0;
  }
  if (argv.includes('--deleted')) return deletedNodesCommand(argv.filter((a) => a !== '--deleted'), ctx);
  const opts = parsedOrUsage(ctx, () => {
    const { values } = parse(argv, HISTORY_USAGE, {
      node: { type: 'string' }, label: { type: 'string' }, provider: { type: 'string' }, since: { type: 'string' },
      limit: { type: 'string' }, requests: { type: 'boolean' }, request: { type: 'string' },
    });
    if (values.requests === true || values.request !== undefined) {
      // node filters say nothing of requests: refused rather than silently ignored
      const nodeFilter = ['node', 'label', 'provider'].find((k) => values[k as 'node' | 'label' | 'provider'] !== undefined);
      if (nodeFilter !== undefined) {
        throw new UsageProblem(HISTORY_USAGE, `argument --${nodeFilter}: not allowed with ${values.request !== undefined ? '--request' : '--requests'}`);
      }
    }
    return { values, since: sinceOf(values.since, ctx, HISTORY_USAGE), limit: limitOf(values.limit, HISTORY_USAGE) };
  });
  if (typeof opts === 'number') return opts;
  const { values, since, limit } = opts;
  const json = ctx.json || values.json === true;
  return withHistory(ctx, async (db) => {
    if (values.requests === true || values.request !== undefined) {
      const shown = db === null ? [] : await queryRequestHistory(db, { request: values.request ?? null, since, limit });
      if (json) ctx.out(pythonJson(shown.map((r) => ({ ...r, time: isoTime(r.at) }))));
      else {
        ctx.out(formatTable(['Time', 'Request', 'From', 'To', 'Launcher', 'Reason'],
          shown.map((r) => [isoTime(r.at), r.requestId, r.fromState, r.toState, r.launcher, r.reason])));
      }
      if (db !== null) await warnGaps(ctx, db, since);
      return 0;
    }
    const rows = db === null ? [] : await queryHistory(db, {
      node: values.node ?? null, label: values.label ?? null, provider: values.provider ?? null, since, limit,
    });
    if (json) {
      ctx.out(pythonJson(rows.map((r) => ({ ...r, time: isoTime(r.at) }))));
    } else {
      ctx.out(formatTable(['Time', 'Node', 'Label', 'Provider', 'From', 'To', 'Launcher', 'Reason'],
        rows.map((r) => [isoTime(r.at), r.nodeId, r.label, r.provider, r.fromState, r.toState, r.launcher, r.reason])));
    }
    if (db !== null) await warnGaps(ctx, db, since);
    return 0;
  });
}

const DELETED_USAGE = 'usage: nodepool history --deleted [-h] [--since DURATION] [--limit N] [--json]';

/** Nodes whose znode is gone (most recently deleted first); wired as `history --deleted`. */
export async function deletedNodesCommand(argv: string[], ctx: CliContext): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    ctx.out(`${DELETED_USAGE}\n\nShow nodes whose znode is gone, most recently deleted first.`);
    return 0;
  }
  const opts = parsedOrUsage(ctx, () => {
    const { values } = parse(argv, DELETED_USAGE, { since: { type: 'string' }, limit: { type: 'string' } });
    return { values, since: sinceOf(values.since, ctx, DELETED_USAGE), limit: limitOf(values.limit, DELETED_USAGE) };
  });
  if (typeof opts === 'number') return opts;
  const { values, since, limit } = opts;
  const json = ctx.json || values.json === true;
  return withHistory(ctx, async (db) => {
    const rows = db === null ? [] : await queryDeletedNodes(db, { since, limit: limit > 0 ? limit : null });
    if (json) {
      ctx.out(pythonJson(rows.map((r) => ({ ...r, created: isoTime(r.createdTime), deleted: isoTime(r.deletedAt) }))));
      return 0;
    }
    ctx.out(formatTable(
      ['ID', 'Provider', 'Label', 'Server ID', 'Public IPv4', 'Hostname', 'Last state', 'Created', 'Deleted', 'Lifetime'],
      rows.map((r) => [
        r.id, r.provider, r.label, r.externalId, r.publicIpv4, r.hostname, r.lastState, isoTime(r.createdTime),
        isoTime(r.deletedAt), r.createdTime === null ? null : formatAge(r.createdTime, r.deletedAt),
      ]),
    ));
    return 0;
  });
}
