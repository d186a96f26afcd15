// `nodepool label-list` (beyond Nodepool 3.x's CLI; the same data as the web API's /label-list).
import { LABEL_COLUMNS, labelList } from '../status.js';
import { formatObjects } from '../table.js';
import { printJson } from './common.js';
import type { Command } from './common.js';

export const labelListCommand: Command = async (_args, ctx) => {
  const rows = await labelList(await ctx.zookeeper());
  if (ctx.json) printJson(ctx, rows);
  else ctx.out(formatObjects(LABEL_COLUMNS, rows));
  return 0;
};
