// `nodepool stats`: per label and provider, what the recorded history says about launches
// (count, failures, launch time, how long nodes sat ready before use) and requests (count,
// fulfilment latency; min-ready's own requests apart). Percentiles are nearest-rank, in seconds.
import { parseArgs } from 'node:util';
import { queryStats, type StatsRow } from '@nodepool-ts/core/db';
import { pythonJson } from '@nodepool-ts/core/model';
import type { CliContext } from '../context.js';
import { formatTable } from '../table.js';
import { UsageProblem, isoTime, parseSince, parsedOrUsage, withHistory } from './history.js';

const USAGE = 'usage: nodepool stats [-h] [--since DURATION] [--json]';

const HELP = `${USAGE}

Launch and request statistics per label and provider, from the recorded history.
Requests are those of Zuul and other clients; the launchers' own min-ready requests
(replacing used nodes) are counted apart.

optional arguments:
  -h, --help        show this help message and exit
  --since DURATION  only what was created in the last DURATION (30m, 1h, 2d, 1w)
                    or since an ISO 8601 time
  --json            print JSON instead of a table
`;

const COLUMNS = [
  'Label', 'Provider', 'Launched', 'Ready', 'Failed', 'Failed attempts', 'Launch p50 (s)', 'Launch p95 (s)',
  'Ready wait p50 (s)', 'Ready wait p95 (s)', 'Requests', 'Fulfilled', 'Fulfil p50 (s)', 'Fulfil p95 (s)', 'Min-ready requests',
];

function secs(v: number | null): string | null {
  return v === null ? null : v.toFixed(1);
}

function cells(r: StatsRow): (string | number | null)[] {
  return [
    r.label, r.provider, r.launched, r.ready, r.failed, r.failedAttempts, secs(r.launchP50), secs(r.launchP95),
    secs(r.readyBeforeUseP50), secs(r.readyBeforeUseP95), r.requests, r.fulfilled, secs(r.fulfilP50), secs(r.fulfilP95),
    r.minReadyRequests,
  ];
}

export async function statsCommand(argv: string[], ctx: CliContext): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    ctx.out(HELP.trimEnd());
    return 0;
  }
  const opts = parsedOrUsage(ctx, () => {
    let values: { since?: string; json?: boolean };
    try {
      ({ values } = parseArgs({ args: argv, options: { since: { type: 'string' }, json: { type: 'boolean' } }, strict: true }));
    } catch (err) {
      throw new UsageProblem(USAGE, err instanceof Error ? err.message.split('\n')[0] ?? err.message : String(err));
    }
    let since: number | null = null;
    if (values.since !== undefined) {
      try {
        since = parseSince(values.since, ctx.now());
      } catch (err) {
        throw new UsageProblem(USAGE, err instanceof Error ? err.message : String(err));
      }
    }
    return { since, json: ctx.json || values.json === true };
  });
  if (typeof opts === 'number') return opts;
  return withHistory(ctx, async (db) => {
    const report = db === null ? { since: opts.since, rows: [] } : await queryStats(db, { since: opts.since });
    if (opts.json) ctx.out(pythonJson({ since: isoTime(report.since), rows: report.rows }));
    else ctx.out(formatTable(COLUMNS, report.rows.map(cells)));
    return 0;
  });
}
