// Pieces every command family shares: argument access and the JSON/text split of messages.
import { pythonJson } from '@nodepool-ts/core/model';
import type { ParsedArgs } from '../args.js';
import type { CommandContext } from '../runtime.js';

export type Command = (args: ParsedArgs, ctx: CommandContext) => Promise<number>;

/** A parsed string argument ('' when absent; the parser enforces required ones). */
export function str(args: ParsedArgs, dest: string): string {
  const v = args[dest];
  return typeof v === 'string' ? v : '';
}

export function bool(args: ParsedArgs, dest: string): boolean {
  return args[dest] === true;
}

/** Print data as JSON the way the web API does (Python json.dumps layout). */
export function printJson(ctx: CommandContext, value: unknown): void {
  ctx.out(pythonJson(value));
}

/**
 * A one-line outcome Nodepool prints on stdout (e.g. "Node id 7 not found", which it treats
 * as success, exit 0); with --json it becomes {"message": "..."}.
 */
export function notice(ctx: CommandContext, text: string): void {
  if (ctx.json) printJson(ctx, { message: text });
  else ctx.out(text);
}
