// Shared helpers for the config tests: fixture paths and throw-away config directories.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';

export const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'config');
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export function fixture(name: string): string {
  return join(FIXTURES, name);
}

/** An environment with no clouds.yaml anywhere we would look (except /etc/openstack). */
export function isolatedEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { HOME: '/nonexistent-home', ...extra };
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Write files (relative path -> content) into a fresh temporary directory; returns its path. */
export function tempDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'nodepool-ts-config-'));
  dirs.push(dir);
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
  }
  return dir;
}
