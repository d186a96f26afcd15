// `-l LOGCONFIG` of the daemons and the CLI. Nodepool hands that file to Python's logging: a YAML
// `dictConfig` (a mapping with `version: 1`) or an ini `fileConfig`. An operator's existing file
// keeps working here: what it says about the `nodepool` logger (else the root logger) and the
// handlers that logger writes to gives the level and the log file (or stdout/stderr). Formatters,
// filters and other loggers are Python's own and are left out, with a note saying so; nodepool-ts
// always writes JSON lines. nodepool-ts's own form is `{level: info, file: /var/log/...}`.
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve, dirname } from 'node:path';
import { parse as parseYaml } from 'yaml';

export type LogLevelName = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface LogSettings {
  /** which form the file had */
  form: 'nodepool-ts' | 'dictConfig' | 'fileConfig' | 'none';
  level?: LogLevelName;
  /** append to this file (reopened when it is moved away, and on SIGHUP) */
  file?: string;
  /** no file: this stream */
  stream?: 'stdout' | 'stderr';
  /** what of the file was not applied, for one info line at start */
  notes: string[];
}

export class LogConfigError extends Error {
  readonly code = 'ELOGCONFIG';
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'LogConfigError';
  }
}

const ORDER: LogLevelName[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** A level in Python's (DEBUG, WARNING, 30, ...) or pino's (debug, warn, ...) naming; null = NOTSET. */
export function levelName(v: unknown): LogLevelName | null | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) {
    if (v <= 0) return null;
    return v <= 10 ? 'debug' : v <= 20 ? 'info' : v <= 30 ? 'warn' : v <= 40 ? 'error' : 'fatal';
  }
  if (typeof v !== 'string') return undefined;
  const s = v.trim().toLowerCase();
  if (/^\d+$/.test(s)) return levelName(Number(s));
  switch (s) {
    case 'notset': return null;
    case 'warning': return 'warn';
    case 'critical': return 'fatal';
    default: return (ORDER as string[]).includes(s) ? (s as LogLevelName) : undefined;
  }
}

const higher = (a: LogLevelName, b: LogLevelName): LogLevelName => (ORDER.indexOf(a) >= ORDER.indexOf(b) ? a : b);

interface PyHandler {
  cls: string;
  level: LogLevelName | null;
  filename: string | null;
  stream: 'stdout' | 'stderr' | null;
}

interface PyLogger {
  level: LogLevelName | null;
  handlers: string[];
  propagate: boolean;
}

interface PyConfig {
  handlers: Map<string, PyHandler>;
  loggers: Map<string, PyLogger>;
  root: PyLogger | null;
}

/** Reads `-l FILE`; no file: nothing configured. Throws LogConfigError naming the file. */
export function readLogConfig(path: string | undefined): LogSettings {
  if (!path) return { form: 'none', notes: [] };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new LogConfigError(path, `cannot read the log config: ${(err as Error).message}`);
  }
  return parseLogConfig(text, path);
}

export function parseLogConfig(text: string, file: string): LogSettings {
  const fail = (msg: string): never => {
    throw new LogConfigError(file, msg);
  };
  // an ini file starts (after comments) with a [section] line, which no logging YAML does
  const first = text.split(/\r?\n/).find((l) => !/^\s*([#;].*)?$/.test(l)) ?? '';
  if (/^\s*\[[^\]]+\]\s*$/.test(first)) {
    return fromPython(fileConfig(text, fail), 'fileConfig', file, fail);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    return fail(`not YAML, nor an ini logging config: ${(err as Error).message.split('\n')[0] ?? ''}`);
  }
  if (doc === null || doc === undefined) return { form: 'nodepool-ts', notes: [] };
  if (typeof doc !== 'object' || Array.isArray(doc)) return fail('expected a mapping');
  const m = doc as Record<string, unknown>;
  if ('version' in m) return fromPython(dictConfig(m, fail), 'dictConfig', file, fail);
  const out: LogSettings = { form: 'nodepool-ts', notes: [] };
  for (const [k, v] of Object.entries(m)) {
    if (k === 'level') {
      const l = levelName(v);
      if (l === undefined || l === null) fail(`level: expected one of debug, info, warn, error (or Python's DEBUG, INFO, WARNING, ERROR, CRITICAL), got ${JSON.stringify(v)}`);
      out.level = l ?? undefined;
    } else if (k === 'file') {
      if (typeof v !== 'string' || v === '') fail('file: expected a path');
      out.file = resolvePath(file, v as string);
    } else {
      fail(`unknown key ${k} (expected level and file, or a Python logging dictConfig with version: 1)`);
    }
  }
  return out;
}

function resolvePath(configFile: string, p: string): string {
  return isAbsolute(p) ? p : resolve(dirname(configFile), p);
}

/** Python's `ext://sys.stdout` (dictConfig) or `sys.stdout` in a handler's args (fileConfig). */
function streamOf(v: string): 'stdout' | 'stderr' | null {
  if (/sys\.stdout/.test(v)) return 'stdout';
  if (/sys\.stderr/.test(v)) return 'stderr';
  return null;
}

function dictConfig(m: Record<string, unknown>, fail: (msg: string) => never): PyConfig {
  if (m.version !== 1) fail(`version: Python's logging dictConfig knows only version 1, got ${JSON.stringify(m.version)}`);
  const mapping = (v: unknown, key: string): Record<string, unknown> => {
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) return fail(`${key}: expected a mapping`);
    return v as Record<string, unknown>;
  };
  const level = (v: unknown, key: string): LogLevelName | null => {
    if (v === undefined) return null;
    const l = levelName(v);
    return l === undefined ? fail(`${key}: unknown level ${JSON.stringify(v)}`) : l;
  };
  const handlers = new Map<string, PyHandler>();
  for (const [name, raw] of Object.entries(mapping(m.handlers, 'handlers'))) {
    const h = mapping(raw, `handlers.${name}`);
    const filename = h.filename;
    handlers.set(name, {
      cls: typeof h.class === 'string' ? h.class : '',
      level: level(h.level, `handlers.${name}.level`),
      filename: typeof filename === 'string' ? filename : null,
      stream: typeof h.stream === 'string' ? streamOf(h.stream) : null,
    });
  }
  const logger = (raw: unknown, key: string): PyLogger => {
    const l = mapping(raw, key);
    const hs = l.handlers;
    if (hs !== undefined && (!Array.isArray(hs) || hs.some((h) => typeof h !== 'string'))) fail(`${key}.handlers: expected a list of handler names`);
    return { level: level(l.level, `${key}.level`), handlers: (hs as string[] | undefined) ?? [], propagate: l.propagate !== false && l.propagate !== 0 };
  };
  const loggers = new Map<string, PyLogger>();
  for (const [name, raw] of Object.entries(mapping(m.loggers, 'loggers'))) loggers.set(name, logger(raw, `loggers.${name}`));
  const root = m.root !== undefined ? logger(m.root, 'root') : loggers.get('') ?? null;
  return { handlers, loggers, root };
}

/** The parts of Python's configparser format fileConfig reads: sections of `key = value`. */
function fileConfig(text: string, fail: (msg: string) => never): PyConfig {
  const sections = new Map<string, Map<string, string>>();
  let cur: Map<string, string> | null = null;
  let lastKey: string | null = null;
  for (const line of text.split(/\r?\n/)) {
    if (/^\s*([#;].*)?$/.test(line)) continue;
    const sec = /^\s*\[([^\]]+)\]\s*$/.exec(line);
    if (sec) {
      cur = new Map();
      sections.set(sec[1]?.trim() ?? '', cur);
      lastKey = null;
      continue;
    }
    if (cur !== null && lastKey !== null && /^\s+\S/.test(line)) {
      cur.set(lastKey, `${cur.get(lastKey) ?? ''}\n${line.trim()}`);
      continue;
    }
    const kv = /^\s*([^=:]+?)\s*[=:]\s*(.*)$/.exec(line);
    if (!kv || cur === null) fail(`cannot read line ${JSON.stringify(line.trim())} as part of an ini logging config`);
    lastKey = (kv?.[1] ?? '').toLowerCase();
    cur?.set(lastKey, kv?.[2] ?? '');
  }
  const list = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  const level = (v: string | undefined, key: string): LogLevelName | null => {
    if (v === undefined || v === '') return null;
    const l = levelName(v);
    return l === undefined ? fail(`${key}: unknown level ${JSON.stringify(v)}`) : l;
  };
  const handlers = new Map<string, PyHandler>();
  for (const name of list(sections.get('handlers')?.get('keys'))) {
    const s = sections.get(`handler_${name}`) ?? fail(`[handlers] names ${name} but there is no [handler_${name}] section`);
    const args = s.get('args') ?? '';
    const kwargs = s.get('kwargs') ?? '';
    const cls = s.get('class') ?? '';
    // FileHandler('/var/log/nodepool/launcher.log', ...) or kwargs={'filename': ...}
    const named = /['"]filename['"]\s*:\s*['"]([^'"]+)['"]/.exec(kwargs);
    const positional = /FileHandler/.test(cls) ? /^\s*\(\s*['"]([^'"]+)['"]/.exec(args) : null;
    handlers.set(name, {
      cls,
      level: level(s.get('level'), `handler_${name}.level`),
      filename: named?.[1] ?? positional?.[1] ?? null,
      stream: streamOf(args) ?? (/StreamHandler/.test(cls) ? 'stderr' : null),
    });
  }
  const loggers = new Map<string, PyLogger>();
  let root: PyLogger | null = null;
  for (const key of list(sections.get('loggers')?.get('keys'))) {
    const s = sections.get(`logger_${key}`) ?? fail(`[loggers] names ${key} but there is no [logger_${key}] section`);
    const l: PyLogger = {
      level: level(s.get('level'), `logger_${key}.level`),
      handlers: list(s.get('handlers')),
      propagate: s.get('propagate') !== '0',
    };
    if (key === 'root') root = l;
    else loggers.set(s.get('qualname') ?? key, l);
  }
  return { handlers, loggers, root };
}

/** What the `nodepool` logger (else the root logger) of a Python config means here. */
function fromPython(c: PyConfig, form: 'dictConfig' | 'fileConfig', file: string, fail: (msg: string) => never): LogSettings {
  const notes: string[] = [];
  const own = c.loggers.get('nodepool') ?? null;
  const target = own ?? c.root;
  let level: LogLevelName = target?.level ?? c.root?.level ?? 'warn';
  const names = [...(target?.handlers ?? [])];
  if (own !== null && own.propagate && c.root !== null) names.push(...c.root.handlers);
  const used: PyHandler[] = [];
  for (const n of names) {
    const h = c.handlers.get(n);
    if (h === undefined) fail(`logger handler ${n} is not defined under handlers`);
    else if (!used.includes(h)) used.push(h);
  }
  const files = used.filter((h) => h.filename !== null);
  const chosen = files[0] ?? used.find((h) => h.stream !== null) ?? null;
  if (chosen?.level) level = higher(level, chosen.level);
  const out: LogSettings = { form, level, notes };
  if (chosen?.filename) out.file = resolvePath(file, chosen.filename);
  else if (chosen?.stream) out.stream = chosen.stream;
  const others = used.filter((h) => h !== chosen);
  if (others.length > 0) notes.push(`only one destination is used (${out.file ?? out.stream ?? 'stderr'}); ${others.length} other handler(s) of the file are not`);
  if (chosen !== null && /Rotating/.test(chosen.cls)) {
    notes.push(`${chosen.cls} is not rotated by nodepool-ts: rotate with logrotate (the file is reopened when moved, and on SIGHUP)`);
  }
  const ignoredLoggers = [...c.loggers.keys()].filter((k) => k !== 'nodepool');
  if (ignoredLoggers.length > 0) notes.push(`loggers other than nodepool and root are Python libraries' and do not apply: ${ignoredLoggers.join(', ')}`);
  notes.push('formatters are not applied: nodepool-ts writes JSON lines');
  return out;
}
