// @nodepool-ts/cli — the `nodepool` command, and the table/listing code the launcher's web API
// shares with it (also reachable as @nodepool-ts/cli/table and @nodepool-ts/cli/status).
export { main, cliVersion } from './main.js';
export type { CliIO } from './main.js';
export type { CliContext, CliLogLevel, CommandFn } from './context.js';
export { formatTable, formatObjects, cellText, textWidth } from './table.js';
export type { Cell, Column } from './table.js';
