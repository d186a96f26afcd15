// clouds.yaml, read the way os-client-config finds it. Only the keys nodepool-ts uses are typed;
// everything else stays in `raw` for the OpenStack driver. Credentials are never echoed in
// messages: issues name the key path and the expected type only.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError, type ConfigIssue } from './errors.js';
import { zodIssues } from './issues.js';
import { isRecord, parseYaml, readText, sortIssues } from './source.js';
import type { CloudConfig } from './types.js';

export interface CloudsOptions {
  /** an explicit clouds.yaml; skips the search */
  file?: string | null;
  env?: NodeJS.ProcessEnv;
}

export interface CloudsResult {
  file: string | null;
  clouds: Map<string, CloudConfig>;
  /** the candidates looked at, for "no clouds.yaml found" messages */
  searched: string[];
  issues: ConfigIssue[];
}

/** os-client-config's order: $OS_CLIENT_CONFIG_FILE, ./clouds.yaml, user config, system config. */
export function cloudsSearchPath(env: NodeJS.ProcessEnv = process.env): string[] {
  const home = env.HOME !== undefined && env.HOME !== '' ? env.HOME : homedir();
  const candidates: string[] = [];
  const explicit = env.OS_CLIENT_CONFIG_FILE;
  if (explicit !== undefined && explicit !== '') candidates.push(resolve(explicit));
  candidates.push(
    resolve('clouds.yaml'),
    join(home, '.config', 'openstack', 'clouds.yaml'),
    '/etc/openstack/clouds.yaml',
  );
  return candidates;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

// Passwords and ids are sometimes written unquoted and come out as numbers: accept them as text.
const text = () => z.union([z.string(), z.number()], { error: 'expected string' }).transform((v) => String(v));

const cloudSchema = z.looseObject({
  auth: z.looseObject({
    auth_url: text().optional(),
    username: text().optional(),
    password: text().optional(),
    project_name: text().optional(),
    project_id: text().optional(),
    user_domain_name: text().optional(),
    project_domain_name: text().optional(),
  }, { error: 'expected mapping' }).optional(),
  region_name: text().optional(),
  regions: z.array(
    z.union([text(), z.looseObject({ name: text() })], { error: 'expected region name or {name: ...}' }),
    { error: 'expected list' },
  ).optional(),
  image_format: z.string({ error: 'expected string' }).optional(),
}, { error: 'expected mapping' });

const cloudsFileSchema = z.looseObject({
  clouds: z.record(z.string(), cloudSchema, { error: 'expected mapping' }).optional(),
}, { error: 'expected mapping' });

/** Like loadCloudsYaml but returns the issues instead of throwing (the config loader merges them). */
export async function readCloudsYaml(opts: CloudsOptions = {}): Promise<CloudsResult> {
  const env = opts.env ?? process.env;
  const clouds = new Map<string, CloudConfig>();
  let file: string | null = null;
  let searched: string[];
  if (opts.file !== undefined && opts.file !== null) {
    file = resolve(opts.file);
    searched = [file];
  } else {
    searched = cloudsSearchPath(env);
    for (const candidate of searched) {
      if (await isFile(candidate)) {
        file = candidate;
        break;
      }
    }
  }
  if (file === null) return { file, clouds, searched, issues: [] };

  const read = await readText(file);
  if (!read.ok) return { file, clouds, searched, issues: [read.issue] };
  const parsed = parseYaml(file, read.text);
  if (!parsed.ok) return { file, clouds, searched, issues: parsed.issues };
  const src = parsed.source;
  if (src.data === null || src.data === undefined) return { file, clouds, searched, issues: [] };

  const result = cloudsFileSchema.safeParse(src.data);
  if (!result.success) return { file, clouds, searched, issues: sortIssues(zodIssues(src, result.error.issues)) };

  const rawClouds = isRecord(src.data) && isRecord(src.data.clouds) ? src.data.clouds : {};
  for (const [name, entry] of Object.entries(result.data.clouds ?? {})) {
    const regions = (entry.regions ?? []).map((r) => (typeof r === 'string' ? r : r.name));
    const raw = rawClouds[name];
    clouds.set(name, {
      name,
      authUrl: entry.auth?.auth_url ?? null,
      username: entry.auth?.username ?? null,
      password: entry.auth?.password ?? null,
      projectName: entry.auth?.project_name ?? null,
      projectId: entry.auth?.project_id ?? null,
      userDomainName: entry.auth?.user_domain_name ?? null,
      projectDomainName: entry.auth?.project_domain_name ?? null,
      regionName: entry.region_name ?? regions[0] ?? null,
      regions,
      imageFormat: entry.image_format ?? 'qcow2',
      raw: isRecord(raw) ? raw : {},
      file,
    });
  }
  return { file, clouds, searched, issues: [] };
}

/** Find and read clouds.yaml; `file: null` when none exists. Throws ConfigError when it is broken. */
export async function loadCloudsYaml(
  opts: CloudsOptions = {},
): Promise<{ file: string | null; clouds: Map<string, CloudConfig> }> {
  const result = await readCloudsYaml(opts);
  if (result.issues.length > 0) throw new ConfigError(result.issues);
  return { file: result.file, clouds: result.clouds };
}
