// Command-line parsing with the observable behaviour of the Python CLI's argparse set-up: global
// options before the command, per-command options and positionals in any order, unique prefixes
// of long options, `--opt=value`, `-cVALUE`, `--` ends options, and argparse's error messages
// (usage + `prog: error: ...`, exit status 2). Beyond Nodepool: global options are also accepted
// after the command, and every command takes `--json`.
import { COMMAND_HELP, MAIN_HELP } from './help.js';

export const COMMAND_NAMES = [
  'list', 'image-list', 'dib-image-list', 'image-build', 'alien-image-list', 'delete',
  'image-delete', 'dib-image-delete', 'config-validate', 'request-list', 'info', 'erase',
  'hold', 'label-list', 'history', 'stats', 'token', 'image-upload', 'static-host', 'image-status',
  'image-pause', 'image-unpause', 'export-image-data', 'import-image-data',
] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

interface OptionArg {
  kind: 'option';
  flag: `--${string}`;
  dest: string;
  takesValue: boolean;
  required?: boolean;
}
interface PositionalArg {
  kind: 'positional';
  dest: string;
  /** name used in error messages (argparse prints the metavar, else the dest) */
  metavar: string;
  optional?: boolean;
}
type ArgSpec = OptionArg | PositionalArg;

export interface CommandSpec {
  name: CommandName;
  /** arguments in declaration order (argparse reports missing ones in this order) */
  args: ArgSpec[];
  /** the command parses its own arguments (history, stats, token): everything after it is passed on */
  passthrough?: boolean;
}

const flag = (f: `--${string}`, dest: string, required = false): OptionArg =>
  ({ kind: 'option', flag: f, dest, takesValue: false, required });
const opt = (f: `--${string}`, dest: string, required = false): OptionArg =>
  ({ kind: 'option', flag: f, dest, takesValue: true, required });
const pos = (dest: string, metavar = dest, optional = false): PositionalArg =>
  ({ kind: 'positional', dest, metavar, optional });
const json = flag('--json', 'json');

export const COMMANDS: Readonly<Record<CommandName, CommandSpec>> = {
  'list': { name: 'list', args: [flag('--detail', 'detail'), json] },
  'image-list': { name: 'image-list', args: [json] },
  'dib-image-list': { name: 'dib-image-list', args: [json] },
  'image-build': { name: 'image-build', args: [pos('image'), flag('--wait', 'wait'), json] },
  'alien-image-list': { name: 'alien-image-list', args: [pos('provider', 'provider', true), json] },
  'delete': { name: 'delete', args: [pos('id'), flag('--now', 'now'), json] },
  'image-delete': {
    name: 'image-delete',
    args: [
      opt('--provider', 'provider', true), opt('--image', 'image', true),
      opt('--upload-id', 'upload_id', true), opt('--build-id', 'build_id', true), json,
    ],
  },
  'dib-image-delete': { name: 'dib-image-delete', args: [pos('id'), json] },
  'config-validate': { name: 'config-validate', args: [json] },
  'request-list': { name: 'request-list', args: [json] },
  'info': { name: 'info', args: [pos('provider', 'PROVIDER'), json] },
  'erase': { name: 'erase', args: [pos('provider', 'PROVIDER'), flag('--force', 'force'), json] },
  'hold': { name: 'hold', args: [pos('id'), opt('--reason', 'reason'), json] },
  'label-list': { name: 'label-list', args: [json] },
  'image-upload': { name: 'image-upload', args: [pos('provider'), pos('image'), flag('--wait', 'wait'), json] },
  'history': { name: 'history', args: [], passthrough: true },
  'stats': { name: 'stats', args: [], passthrough: true },
  'token': { name: 'token', args: [], passthrough: true },
  'static-host': { name: 'static-host', args: [], passthrough: true },
  'image-status': { name: 'image-status', args: [json] },
  'image-pause': { name: 'image-pause', args: [pos('image'), json] },
  'image-unpause': { name: 'image-unpause', args: [pos('image'), json] },
  'export-image-data': { name: 'export-image-data', args: [pos('path'), json] },
  'import-image-data': { name: 'import-image-data', args: [pos('path'), json] },
};

export interface GlobalOptions {
  config: string;
  secure: string | null;
  logConfig: string | null;
  debug: boolean;
  json: boolean;
}

/** Parsed command arguments by dest: string for values/positionals, boolean for flags. */
export type ParsedArgs = Readonly<Record<string, string | boolean | undefined>>;

export type ParseResult =
  | { kind: 'help'; text: string }
  | { kind: 'version' }
  | { kind: 'no-command'; globals: GlobalOptions }
  | { kind: 'command'; globals: GlobalOptions; command: CommandName; args: ParsedArgs; rest: string[] };

export class UsageError extends Error {
  readonly code = 'EUSAGE';
  /** exit status argparse uses for usage errors */
  readonly exitCode = 2;
  constructor(
    readonly prog: string,
    readonly usage: string,
    message: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }

  /** The text argparse writes to stderr. */
  render(): string {
    return `${this.usage}${this.prog}: error: ${this.message}`;
  }
}

export const DEFAULT_CONFIG = '/etc/nodepool/nodepool.yaml';

function usageOf(help: string): string {
  const end = help.indexOf('\n\n');
  return end === -1 ? help : help.slice(0, end + 1);
}
const MAIN_USAGE = usageOf(MAIN_HELP);

const GLOBAL_VALUE_OPTS: Record<string, keyof GlobalOptions> = { '-c': 'config', '-s': 'secure', '-l': 'logConfig' };
const GLOBAL_LONG_FLAGS = ['--help', '--version', '--debug', '--json'] as const;

/** argparse treats `-5` or `-1.5` as a value, not an option, when no option looks like that. */
function looksLikeOption(arg: string): boolean {
  return arg.startsWith('-') && arg !== '-' && !/^-\d+$|^-\d*\.\d+$/.test(arg);
}

function expandLong(arg: string, candidates: readonly string[], prog: string, usage: string): string | null {
  if (candidates.includes(arg)) return arg;
  const matches = candidates.filter((c) => c.startsWith(arg));
  if (matches.length === 1) return matches[0] ?? null;
  if (matches.length > 1) {
    throw new UsageError(prog, usage,
      `ambiguous option: ${arg} could match ${matches.join(', ')}`);
  }
  return null;
}

type GlobalHit = { consumed: number } | { help: true } | { version: true } | null;

/** Try to read a global option at argv[i]; mutates `globals`. */
function readGlobal(argv: readonly string[], i: number, globals: GlobalOptions): GlobalHit {
  const arg = argv[i] ?? '';
  if (arg === '-h') return { help: true };
  if (arg.startsWith('--')) {
    const [name, explicit] = splitEquals(arg);
    const long = expandLong(name, GLOBAL_LONG_FLAGS, 'nodepool', MAIN_USAGE);
    if (long === null) return null;
    if (explicit !== undefined) {
      throw new UsageError('nodepool', MAIN_USAGE, `argument ${long}: ignored explicit argument '${explicit}'`);
    }
    if (long === '--help') return { help: true };
    if (long === '--version') return { version: true };
    if (long === '--debug') globals.debug = true;
    else globals.json = true;
    return { consumed: 1 };
  }
  const short = arg.slice(0, 2);
  const key = GLOBAL_VALUE_OPTS[short];
  if (key === undefined || !arg.startsWith('-')) return null;
  let value: string;
  let consumed: number;
  if (arg.length > 2) {
    value = arg[2] === '=' ? arg.slice(3) : arg.slice(2);
    consumed = 1;
  } else {
    const next = argv[i + 1];
    if (next === undefined || looksLikeOption(next)) {
      throw new UsageError('nodepool', MAIN_USAGE, `argument ${short}: expected one argument`);
    }
    value = next;
    consumed = 2;
  }
  if (key === 'config') globals.config = value;
  else if (key === 'secure') globals.secure = value;
  else if (key === 'logConfig') globals.logConfig = value;
  return { consumed };
}

function splitEquals(arg: string): [string, string | undefined] {
  const eq = arg.indexOf('=');
  return eq === -1 ? [arg, undefined] : [arg.slice(0, eq), arg.slice(eq + 1)];
}

function isCommand(name: string): name is CommandName {
  return (COMMAND_NAMES as readonly string[]).includes(name);
}

export function parseArgs(argv: readonly string[]): ParseResult {
  const globals: GlobalOptions = { config: DEFAULT_CONFIG, secure: null, logConfig: null, debug: false, json: false };
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') { i++; break; }
    if (!looksLikeOption(arg)) break;
    const hit = readGlobal(argv, i, globals);
    if (hit === null) {
      // argparse collects unknown options and complains after the command parsed; a missing
      // command is reported first, though, and `-h` still wins.
      const restHelp = argv.slice(i + 1).some((a) => a === '-h' || a === '--help');
      if (restHelp) return { kind: 'help', text: MAIN_HELP };
      throw new UsageError('nodepool', MAIN_USAGE, `unrecognized arguments: ${arg}`);
    }
    if ('help' in hit) return { kind: 'help', text: MAIN_HELP };
    if ('version' in hit) return { kind: 'version' };
    i += hit.consumed - 1;
  }
  const name = argv[i];
  if (name === undefined) return { kind: 'no-command', globals };
  if (!isCommand(name)) {
    const choices = COMMAND_NAMES.map((c) => `'${c}'`).join(', ');
    throw new UsageError('nodepool', MAIN_USAGE,
      `argument command: invalid choice: '${name}' (choose from ${choices})`);
  }
  const spec = COMMANDS[name];
  const rest = argv.slice(i + 1);
  if (spec.passthrough) return { kind: 'command', globals, command: name, args: {}, rest };
  const args = parseCommand(spec, rest, globals);
  if (args === 'help') return { kind: 'help', text: COMMAND_HELP[name] ?? MAIN_HELP };
  return { kind: 'command', globals, command: name, args, rest };
}

function parseCommand(spec: CommandSpec, argv: readonly string[], globals: GlobalOptions): ParsedArgs | 'help' {
  const prog = `nodepool ${spec.name}`;
  const usage = usageOf(COMMAND_HELP[spec.name] ?? '');
  const options = spec.args.filter((a): a is OptionArg => a.kind === 'option');
  const positionals = spec.args.filter((a): a is PositionalArg => a.kind === 'positional');
  const longFlags = [...options.map((o) => o.flag), '--help'];
  const values: Record<string, string | boolean | undefined> = {};
  for (const o of options) if (!o.takesValue) values[o.dest] = false;
  const free: string[] = [];
  const unknown: string[] = [];
  let onlyPositionals = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (onlyPositionals || !looksLikeOption(arg)) { free.push(arg); continue; }
    if (arg === '--') { onlyPositionals = true; continue; }
    if (arg === '-h') return 'help';
    if (arg.startsWith('--')) {
      const [name, explicit] = splitEquals(arg);
      const long = expandLong(name, longFlags, prog, usage);
      if (long === '--help') return 'help';
      const o = options.find((x) => x.flag === long);
      if (o !== undefined) {
        if (!o.takesValue) {
          if (explicit !== undefined) {
            throw new UsageError(prog, usage, `argument ${o.flag}: ignored explicit argument '${explicit}'`);
          }
          values[o.dest] = true;
          if (o.dest === 'json') globals.json = true;
        } else if (explicit !== undefined) {
          values[o.dest] = explicit;
        } else {
          const next = argv[i + 1];
          if (next === undefined || looksLikeOption(next)) {
            throw new UsageError(prog, usage, `argument ${o.flag}: expected one argument`);
          }
          values[o.dest] = next;
          i++;
        }
        continue;
      }
    }
    // beyond Nodepool: global options after the command
    const hit = readGlobal(argv, i, globals);
    if (hit === null) { unknown.push(arg); continue; }
    if ('help' in hit) return 'help';
    if ('version' in hit) { unknown.push(arg); continue; }
    i += hit.consumed - 1;
  }
  const missing: string[] = [];
  let f = 0;
  for (const p of positionals) {
    const v = free[f];
    if (v !== undefined) { values[p.dest] = v; f++; }
    else if (!p.optional) missing.push(p.metavar);
  }
  for (const o of options) if (o.required && values[o.dest] === undefined) missing.push(o.flag);
  // argparse reports missing arguments in declaration order
  const order = spec.args.map((a) => (a.kind === 'option' ? a.flag : a.metavar));
  missing.sort((a, b) => order.indexOf(a) - order.indexOf(b));
  if (missing.length > 0) {
    throw new UsageError(prog, usage, `the following arguments are required: ${missing.join(', ')}`);
  }
  unknown.push(...free.slice(f));
  if (unknown.length > 0) {
    throw new UsageError('nodepool', MAIN_USAGE, `unrecognized arguments: ${unknown.join(' ')}`);
  }
  return values;
}
