// `nodepool request-list`.
import { REQUEST_COLUMNS, requestList } from '../status.js';
import { formatObjects } from '../table.js';
import { printJson } from './common.js';
import type { Command } from './common.js';

export const requestListCommand: Command = async (_args, ctx) => {
  const rows = await requestList(await ctx.zookeeper());
  if (ctx.json) printJson(ctx, rows);
  else ctx.out(formatObjects(REQUEST_COLUMNS, rows));
  return 0;
};
