// Optional modules of this package that other engineers provide (history, stats, image-build
// --wait): loaded on demand, so the build does not depend on them existing.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Import `specifier` (relative to this package's src/ or dist/ root, ending in `.js`) if the
 * module exists; null if it does not. Errors inside an existing module propagate.
 */
export async function importOptional(specifier: string): Promise<Record<string, unknown> | null> {
  const url = new URL(specifier, import.meta.url);
  const file = fileURLToPath(url);
  // under tsx (tests) the sources are .ts files behind .js specifiers
  if (!existsSync(file) && !existsSync(file.replace(/\.js$/, '.ts'))) return null;
  return (await import(url.href)) as Record<string, unknown>;
}
