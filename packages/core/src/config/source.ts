// A parsed YAML file that remembers where every value came from, so that schema problems found on
// the plain JS value (by zod, or by cross-reference checks) can be reported with file:line:column.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  LineCounter, isAlias, isMap, isPair, isScalar, isSeq, parseDocument,
  type Document, type ScalarTag, type Tags, type YAMLError,
} from 'yaml';
import type { ConfigIssue } from './errors.js';

export type PathKey = string | number;
export type KeyPath = readonly PropertyKey[];

export interface YamlSource {
  file: string;
  doc: Document.Parsed;
  lineCounter: LineCounter;
  /** the document as plain JS (null for an empty document) */
  data: unknown;
}

export type ReadResult =
  | { ok: true; text: string }
  | { ok: false; issue: ConfigIssue };

const MISSING_RETRY_DELAY_MS = 500;

/**
 * Read a file; a missing file is retried (`attempts` tries, 0.5 s apart) because an outside
 * process replacing the config (e.g. configuration management) makes it vanish for a moment
 * while the daemons re-read it every loop.
 */
export async function readText(file: string, attempts = 1): Promise<ReadResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return { ok: true, text: await readFile(file, 'utf8') };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && attempt < attempts) {
        await sleep(MISSING_RETRY_DELAY_MS);
        continue;
      }
      const message = code === 'ENOENT'
        ? 'file not found'
        : code === 'EISDIR'
          ? 'is a directory, expected a YAML file'
          : `cannot read file: ${code ?? (err as Error).message}`;
      return { ok: false, issue: { file, line: null, column: null, keyPath: '', message } };
    }
  }
}

/**
 * Nodepool 3.14+'s environment substitution: `%(NODEPOOL_NAME)` anywhere in the file is replaced
 * by that environment variable's value before the YAML is parsed (only variables whose name
 * starts with NODEPOOL_). One left over names a variable that is not set: an error at its line.
 */
export function substituteEnv(file: string, text: string, env: NodeJS.ProcessEnv): { ok: true; text: string } | { ok: false; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const out = text.split('\n').map((line, i) => line.replace(/%\((NODEPOOL_[A-Za-z0-9_]*)\)/g, (ref: string, name: string, at: number) => {
    const value = env[name];
    if (value !== undefined) return value;
    issues.push({ file, line: i + 1, column: at + 1, keyPath: '', message: `${ref}: environment variable ${name} is not set` });
    return ref;
  }));
  return issues.length === 0 ? { ok: true, text: out.join('\n') } : { ok: false, issues };
}

export type ParseResult =
  | { ok: true; source: YamlSource }
  | { ok: false; issues: ConfigIssue[] };

// PyYAML's booleans. The yaml package's 1.1 schema also reads `y`/`n` as booleans, which PyYAML
// (and so Nodepool) reads as strings.
const PY_TRUE = /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/;
const pyBool: ScalarTag = {
  identify: (value) => typeof value === 'boolean',
  default: true,
  tag: 'tag:yaml.org,2002:bool',
  test: /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON|no|No|NO|false|False|FALSE|off|Off|OFF)$/,
  resolve: (str) => PY_TRUE.test(str),
};

function pyYamlTags(tags: Tags): Tags {
  const out: Tags = tags.filter((t) => typeof t === 'string' || t.tag !== 'tag:yaml.org,2002:bool');
  return [pyBool, ...out];
}

/**
 * Parse with YAML 1.1 rules, as PyYAML's safe_load does for Nodepool (`yes`/`on` are booleans,
 * `<<` merge keys work), so a file Nodepool reads means the same thing here.
 */
export function parseYaml(file: string, text: string): ParseResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter, version: '1.1', schema: 'yaml-1.1', customTags: pyYamlTags, prettyErrors: true,
  });
  // After the first syntax error the parser's view of the rest is guesswork: report that one (as
  // PyYAML would) plus any duplicate keys, which are independent of it.
  const [first, ...rest] = [...doc.errors, ...doc.warnings];
  const problems: YAMLError[] = first === undefined ? [] : [first, ...rest.filter((e) => e.code === 'DUPLICATE_KEY')];
  if (problems.length > 0) {
    return { ok: false, issues: problems.map((e) => yamlErrorIssue(file, e, lineCounter)) };
  }
  try {
    return { ok: true, source: { file, doc, lineCounter, data: doc.toJS({ maxAliasCount: 1000 }) } };
  } catch (err) {
    return { ok: false, issues: [{ file, line: null, column: null, keyPath: '', message: (err as Error).message }] };
  }
}

function yamlErrorIssue(file: string, e: YAMLError, lc: LineCounter): ConfigIssue {
  const pos = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
  // Keep the parser's first line only: the code frame that follows may quote secrets (clouds.yaml
  // passwords) and breaks the one-issue-per-line format.
  const first = (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?\s*$/, '');
  return { file, line: pos.line, column: pos.col, keyPath: '', message: `YAML error: ${first}` };
}

/** `providers[1].pools[0].labels[0].min-ram` */
export function formatKeyPath(path: KeyPath): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else {
      const s = String(key);
      if (/^[A-Za-z0-9_][A-Za-z0-9_-]*$/.test(s)) out += out === '' ? s : `.${s}`;
      else out += `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

function keyMatches(node: unknown, key: PropertyKey): boolean {
  return isScalar(node) && typeof node.value !== 'symbol' && String(node.value) === String(key);
}

/** `<<` (the parser represents the merge key with a symbol) */
function isMergeKey(node: unknown): boolean {
  return isScalar(node) && (typeof node.value === 'symbol' || node.value === '<<');
}

/** Find the pair for `key` in a map node, looking through `<<` merge keys as YAML 1.1 does. */
function findPair(src: YamlSource, map: unknown, key: PropertyKey, depth = 0): { key: unknown; value: unknown } | null {
  if (depth > 20) return null;
  const node = isAlias(map) ? map.resolve(src.doc) : map;
  if (!isMap(node)) return null;
  for (const item of node.items) {
    if (isPair(item) && keyMatches(item.key, key)) return { key: item.key, value: item.value };
  }
  for (const item of node.items) {
    if (!isPair(item) || !isMergeKey(item.key)) continue;
    const sources = isSeq(item.value) ? item.value.items : [item.value];
    for (const s of sources) {
      const found = findPair(src, s, key, depth + 1);
      if (found) return found;
    }
  }
  return null;
}

function positionOf(src: YamlSource, node: unknown): { line: number; column: number } | null {
  if (node === null || typeof node !== 'object' || !('range' in node)) return null;
  const range = (node as { range?: [number, number, number] | null }).range;
  if (!range) return null;
  const pos = src.lineCounter.linePos(range[0]);
  return { line: pos.line, column: pos.col };
}

/**
 * Position of the value at `path`: the key of a mapping entry, the item of a list. When the path
 * does not exist (a required key is missing) the deepest existing ancestor is used.
 */
export function locate(src: YamlSource, path: KeyPath): { line: number; column: number } | null {
  let node: unknown = src.doc.contents;
  let best: unknown = node;
  for (const key of path) {
    if (isAlias(node)) node = node.resolve(src.doc);
    if (isMap(node)) {
      const pair = findPair(src, node, key);
      if (!pair) break;
      best = pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof key === 'number') {
      const item = node.items[key];
      if (item === undefined) break;
      best = item;
      node = item;
    } else {
      break;
    }
  }
  return positionOf(src, best) ?? positionOf(src, src.doc.contents);
}

export function issueAt(src: YamlSource, path: KeyPath, message: string): ConfigIssue {
  const pos = locate(src, path);
  return { file: src.file, line: pos?.line ?? null, column: pos?.column ?? null, keyPath: formatKeyPath(path), message };
}

/** The plain JS value at `path`, undefined when absent. */
export function valueAt(data: unknown, path: KeyPath): unknown {
  let cur: unknown = data;
  for (const key of path) {
    if (Array.isArray(cur) && typeof key === 'number') cur = cur[key];
    else if (cur !== null && typeof cur === 'object' && !Array.isArray(cur)) cur = (cur as Record<PropertyKey, unknown>)[key];
    else return undefined;
  }
  return cur;
}

/** YAML-flavoured name of a value's type, for "expected X, got Y". */
export function describeType(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'float';
  if (typeof value === 'boolean') return 'boolean';
  if (Array.isArray(value)) return 'list';
  if (value instanceof Date) return 'timestamp';
  if (typeof value === 'object') return 'mapping';
  return typeof value;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date);
}

/**
 * Order issues by file (`files` first, then by first appearance) then position, so the report
 * reads top to bottom.
 */
export function sortIssues(issues: ConfigIssue[], files: readonly string[] = []): ConfigIssue[] {
  const fileOrder = new Map<string, number>();
  for (const f of [...files, ...issues.map((i) => i.file)]) if (!fileOrder.has(f)) fileOrder.set(f, fileOrder.size);
  return [...issues].sort((a, b) =>
    (fileOrder.get(a.file) ?? 0) - (fileOrder.get(b.file) ?? 0)
    || (a.line ?? 0) - (b.line ?? 0)
    || (a.column ?? 0) - (b.column ?? 0));
}
