// `nodepool`: the operator's command line. Parses the arguments, loads the config, runs one
// command and returns the exit status; the bin turns that into process.exitCode. Output and
// messages follow Nodepool 3.x's CLI byte for byte where it has the command.
import { readFile } from 'node:fs/promises';
import { ConfigError } from '@nodepool-ts/core/config';
import { configureLogging, parseLogConfig } from '@nodepool-ts/core/log';
import { parseArgs, UsageError } from './args.js';
import type { CommandName, ParsedArgs } from './args.js';
import type { CliContext, CliLogLevel, CommandFn } from './context.js';
import { CliError } from './errors.js';
import { MAIN_HELP } from './help.js';
import { importOptional } from './plugin.js';
import { Runtime } from './runtime.js';
import type { CliIO } from './runtime.js';
import type { Command } from './commands/common.js';
import { configValidateCommand } from './commands/config.js';
import {
  alienImageListCommand, dibImageDeleteCommand, dibImageListCommand, imageBuildCommand,
  exportImageDataCommand, imageDeleteCommand, imageListCommand, imagePauseCommand, imageStatusCommand,
  imageUnpauseCommand, importImageDataCommand,
} from './commands/images.js';
import { imageUploadCommand } from './commands/image-progress.js';
import { labelListCommand } from './commands/labels.js';
import { deleteCommand, holdCommand, listCommand } from './commands/nodes.js';
import { eraseCommand, infoCommand } from './commands/provider.js';
import { requestListCommand } from './commands/requests.js';

export type { CliIO } from './runtime.js';

type PluggedName = 'history' | 'stats' | 'token' | 'static-host';

const COMMANDS: Readonly<Record<Exclude<CommandName, PluggedName>, Command>> = {
  'list': listCommand,
  'image-list': imageListCommand,
  'dib-image-list': dibImageListCommand,
  'image-build': imageBuildCommand,
  'alien-image-list': alienImageListCommand,
  'delete': deleteCommand,
  'image-delete': imageDeleteCommand,
  'dib-image-delete': dibImageDeleteCommand,
  'config-validate': configValidateCommand,
  'request-list': requestListCommand,
  'info': infoCommand,
  'erase': eraseCommand,
  'hold': holdCommand,
  'label-list': labelListCommand,
  'image-upload': imageUploadCommand,
  'image-status': imageStatusCommand,
  'image-pause': imagePauseCommand,
  'image-unpause': imageUnpauseCommand,
  'export-image-data': exportImageDataCommand,
  'import-image-data': importImageDataCommand,
};

/** Commands other engineers ship as separate modules, loaded on demand (see context.ts). */
const PLUGGED: Readonly<Record<PluggedName, { module: string; export: string }>> = {
  history: { module: './commands/history.js', export: 'historyCommand' },
  stats: { module: './commands/stats.js', export: 'statsCommand' },
  token: { module: './commands/token.js', export: 'tokenCommand' },
  'static-host': { module: './commands/static-hosts.js', export: 'staticHostCommand' },
};

let versionCache: string | null = null;
/** the library log level main() last configured (tests call main() many times in one process) */
let configuredLevel: 'debug' | 'warn' | null = null;

/** Our package version (Nodepool prints its own, e.g. `3.5.1`, the same way: bare). */
export async function cliVersion(): Promise<string> {
  if (versionCache === null) {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    versionCache = typeof pkg.version === 'string' ? pkg.version : 'unknown';
  }
  return versionCache;
}

async function loadPlugged(name: PluggedName): Promise<CommandFn | null> {
  const { module, export: exportName } = PLUGGED[name];
  const mod = await importOptional(module);
  const fn = mod?.[exportName];
  return typeof fn === 'function' ? (fn as CommandFn) : null;
}

/**
 * `-l`: Nodepool hands the file to Python's logging (ini fileConfig or a YAML dictConfig); the
 * level its `nodepool` (else root) logger and handler give is honoured, as the daemons do.
 */
async function logConfigLevel(file: string): Promise<CliLogLevel> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new CliError('ELOGCONFIG', `Unable to read logging config file at ${file}`, 1, { file });
  }
  let level: string | undefined;
  try {
    level = parseLogConfig(text, file).level;
  } catch (err) {
    throw new CliError('ELOGCONFIG', `bad logging config: ${(err as Error).message}`, 1, { file });
  }
  switch (level) {
    case 'trace': case 'debug': return 'DEBUG';
    case 'warn': return 'WARNING';
    case 'error': case 'fatal': case 'silent': return 'ERROR';
    default: return 'INFO';
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Print a failure the way an operator can act on it; returns the exit status. */
function report(ctx: CliContext, err: unknown, debug: boolean): number {
  if (err instanceof ConfigError) {
    ctx.err(`nodepool: invalid configuration:\n${err.message}`);
    return 1;
  }
  if (err instanceof CliError) {
    ctx.err(`nodepool: ${err.message}`);
    return err.exitCode;
  }
  ctx.err(`nodepool: ${describe(err)}`);
  if (debug && err instanceof Error && err.stack) ctx.err(err.stack);
  return 1;
}

export async function main(argv: string[], io: CliIO = {}): Promise<number> {
  const stdout = io.stdout ?? ((t: string) => { process.stdout.write(t); });
  const stderr = io.stderr ?? ((t: string) => { process.stderr.write(t); });
  let parsed;
  try {
    parsed = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      stderr(err.render() + '\n');
      return err.exitCode;
    }
    throw err;
  }
  if (parsed.kind === 'help') {
    stdout(parsed.text);
    return 0;
  }
  if (parsed.kind === 'version') {
    stdout(`${await cliVersion()}\n`);
    return 0;
  }
  if (parsed.kind === 'no-command') {
    // like Nodepool: help, then exit status 1
    stdout(MAIN_HELP);
    return 1;
  }
  const { globals, command } = parsed;
  const early = new Runtime(
    { configFile: globals.config, secureFile: globals.secure, json: globals.json, debug: globals.debug, logLevel: 'INFO' },
    io,
  );
  let logLevel: CliLogLevel = 'INFO';
  try {
    if (globals.debug) logLevel = 'DEBUG';
    else if (globals.logConfig !== null) logLevel = await logConfigLevel(globals.logConfig);
  } catch (err) {
    return report(early, err, globals.debug);
  }
  // Library logs (ZooKeeper session, drivers) stay quiet unless asked for, as Nodepool sets
  // kazoo's logger to WARNING for the CLI.
  const pinoLevel = logLevel === 'DEBUG' ? 'debug' : 'warn';
  if (pinoLevel !== configuredLevel) {
    configureLogging({ level: pinoLevel });
    configuredLevel = pinoLevel;
  }
  const ctx = new Runtime(
    { configFile: globals.config, secureFile: globals.secure, json: globals.json, debug: globals.debug, logLevel },
    io,
  );
  try {
    // every command but config-validate needs a valid config (and fails early without one)
    if (command !== 'config-validate') await ctx.loadConfig();
    if (command === 'history' || command === 'stats' || command === 'token' || command === 'static-host') {
      const fn = await loadPlugged(command);
      if (fn === null) {
        ctx.err(`${command}: not available in this build`);
        return 1;
      }
      return await fn(parsed.rest, ctx);
    }
    return await COMMANDS[command](parsed.args as ParsedArgs, ctx);
  } catch (err) {
    return report(ctx, err, globals.debug);
  } finally {
    await ctx.close();
  }
}
