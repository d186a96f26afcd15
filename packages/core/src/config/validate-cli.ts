// `nodepool config-validate`: the same stderr lines as the Python CLI's logging
// (`<date> <time>,<ms> INFO nodepool.cmd.config_validator: validating <file>`), one ERROR line
// per issue, exit code 0/1.
import { formatIssue } from './errors.js';
import { validateConfig } from './load.js';

interface Writable {
  write(chunk: string): unknown;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** Python logging's default asctime: local time, `2026-11-27 11:37:17,246`. */
function asctime(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())},${pad(d.getMilliseconds(), 3)}`;
}

function log(out: Writable, level: 'INFO' | 'ERROR', logger: string, message: string): void {
  out.write(`${asctime(new Date())} ${level} ${logger}: ${message}\n`);
}

export async function runConfigValidate(
  file: string, secure: string | null = null, out: Writable = process.stderr,
): Promise<number> {
  log(out, 'INFO', 'nodepool.cmd.config_validator', `validating ${file}`);
  const issues = await validateConfig(file, { secureFile: secure });
  if (issues.length === 0) {
    log(out, 'INFO', 'nodepool.cmd.nodepoolcmd', 'Configuration validation complete');
    return 0;
  }
  for (const issue of issues) log(out, 'ERROR', 'nodepool.cmd.config_validator', formatIssue(issue));
  log(out, 'ERROR', 'nodepool.cmd.nodepoolcmd',
    `Configuration validation failed: ${issues.length} issue${issues.length === 1 ? '' : 's'}`);
  return 1;
}
