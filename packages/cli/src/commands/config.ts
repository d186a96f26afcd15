// `nodepool config-validate`: validate the `-c` file without connecting anywhere. The validator
// logs Nodepool's lines (`validating <file>`, `Configuration validation complete`) to stderr.
import { runConfigValidate } from '@nodepool-ts/core/config';
import { printJson } from './common.js';
import type { Command } from './common.js';

export const configValidateCommand: Command = async (_args, ctx) => {
  const stderr = { write: (chunk: string) => ctx.err(chunk.endsWith('\n') ? chunk.slice(0, -1) : chunk) };
  const code = await runConfigValidate(ctx.configFile, ctx.secureFile, stderr);
  if (ctx.json) printJson(ctx, { file: ctx.configFile, valid: code === 0 });
  return code;
};
