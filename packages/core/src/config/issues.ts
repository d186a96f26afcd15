// Turn zod issues (paths into the plain JS value) into ConfigIssues (file:line:col + YAML key
// path + "expected X, got Y"), using the YAML document to find the line of each path.
import type { z } from 'zod';
import type { ConfigIssue } from './errors.js';
import { describeType, issueAt, valueAt, type KeyPath, type YamlSource } from './source.js';
import { legacyHint } from './schema.js';

type ZodIssue = z.core.$ZodIssue;

function got(value: unknown, withValue: boolean): string {
  if (withValue && (typeof value === 'number' || typeof value === 'string')) {
    return `got ${JSON.stringify(value)}`;
  }
  if (Array.isArray(value) && value.length === 0) return 'got empty list';
  return `got ${describeType(value)}`;
}

/**
 * A union (e.g. "string or list of strings") whose list branch failed on one element: report
 * that element rather than the whole union.
 */
function deeperBranch(branches: readonly (readonly ZodIssue[])[]): readonly ZodIssue[] | null {
  for (const branch of branches) {
    if (branch.length > 0 && branch.every((i) => i.path.length > 0)) return branch;
  }
  return null;
}

export function zodIssues(src: YamlSource, issues: readonly ZodIssue[], base: KeyPath = []): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const iss of issues) {
    const path: PropertyKey[] = [...base, ...iss.path];
    const value = valueAt(src.data, path);
    switch (iss.code) {
      case 'unrecognized_keys':
        for (const key of iss.keys) {
          const hint = legacyHint(path, key);
          out.push(issueAt(src, [...path, key], hint === null ? 'unknown key' : `unknown key: ${hint}`));
        }
        break;
      case 'invalid_type':
      case 'invalid_format':
        out.push(issueAt(src, path, value === undefined ? 'required key missing' : `${iss.message}, ${got(value, false)}`));
        break;
      case 'invalid_union': {
        const branch = deeperBranch(iss.errors);
        if (branch !== null && value !== undefined) out.push(...zodIssues(src, branch, path));
        else out.push(issueAt(src, path, value === undefined ? 'required key missing' : `${iss.message}, ${got(value, false)}`));
        break;
      }
      case 'invalid_value':
      case 'too_big':
      case 'too_small':
        out.push(issueAt(src, path, `${iss.message}, ${got(value, true)}`));
        break;
      default:
        out.push(issueAt(src, path, iss.message));
    }
  }
  return out;
}
