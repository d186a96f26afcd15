// What every `nodepool` sub-command receives from the dispatcher. Commands never touch
// process.stdout/stderr/stdin or process.exit directly: `main()` builds the context, so tests can
// run the CLI in-process and capture its output, and the bin just turns the returned number into
// the exit code.
import type { Config } from '@nodepool-ts/core/config';

export interface CliContext {
  /** `-c` (default `/etc/nodepool/nodepool.yaml`) */
  configFile: string;
  /** `-s`, or null when not given */
  secureFile: string | null;
  /** `--json`: print the command's data as JSON instead of a table */
  json: boolean;
  /** `--debug` */
  debug: boolean;
  /** Load and validate the config once (cached); rejects with the loader's error. */
  loadConfig(): Promise<Config>;
  /** Write `text` and a newline to stdout (like Python's print). */
  out(text: string): void;
  /** Write `text` and a newline to stderr. */
  err(text: string): void;
  /** Log a line to stderr in Nodepool's CLI format `YYYY-MM-DD HH:MM:SS,mmm LEVEL name: msg`. */
  log(level: CliLogLevel, name: string, message: string): void;
  /** Write `question` to stdout without a newline and resolve with one line read from stdin
   * (without its line ending; '' at end of input). */
  prompt(question: string): Promise<string>;
  /** Current time as float Unix seconds; injectable so tests get stable Age columns. */
  now(): number;
}

export type CliLogLevel = 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR';

/** Signature of every sub-command entry point (`argv` = the arguments after the command name). */
export type CommandFn = (argv: string[], ctx: CliContext) => Promise<number>;
