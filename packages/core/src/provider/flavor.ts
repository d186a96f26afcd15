// Flavor choice for a pool label (§3.5), pure so every cloud driver picks the same flavor from the
// same list and the rule is tested once.
import type { CloudPoolLabel } from '../config/types.js';
import { NotFoundError } from './errors.js';
import type { FlavorInfo, LabelResources } from './types.js';

/** Smallest RAM first; ties keep the cloud's order (a stable sort, like Nodepool's). */
export function sortFlavorsByRam(flavors: readonly FlavorInfo[]): FlavorInfo[] {
  return [...flavors].sort((a, b) => a.ram - b.ram);
}

/**
 * `min-ram` set: the smallest flavor with at least that much RAM whose name CONTAINS
 * `flavor-name` (when given). Otherwise `flavor-name` must EQUAL a flavor's name or id.
 * Returns null when nothing fits so callers choose how to report it.
 */
export function selectFlavor(flavors: readonly FlavorInfo[],
  label: Pick<CloudPoolLabel, 'minRam' | 'flavorName'>): FlavorInfo | null {
  const sorted = sortFlavorsByRam(flavors);
  const { minRam, flavorName } = label;
  if (minRam) {
    return sorted.find((f) => f.ram >= minRam && (!flavorName || f.name.includes(flavorName))) ?? null;
  }
  if (!flavorName) return null;
  return sorted.find((f) => f.name === flavorName || f.id === flavorName) ?? null;
}

/** selectFlavor, throwing the NotFoundError a launch attempt reports. */
export function requireFlavor(provider: string, flavors: readonly FlavorInfo[],
  label: Pick<CloudPoolLabel, 'name' | 'minRam' | 'flavorName'>): FlavorInfo {
  const f = selectFlavor(flavors, label);
  if (f) return f;
  const want = label.minRam
    ? `min-ram ${label.minRam}${label.flavorName ? ` name~${label.flavorName}` : ''}`
    : `${label.flavorName ?? '(no flavor-name)'}`;
  throw new NotFoundError(provider, 'flavor', `${want} (label ${label.name})`, { operation: 'findFlavor' });
}

/** What one node of this flavor costs against quota (§3.6). */
export function flavorResources(f: FlavorInfo): LabelResources {
  return { cores: f.vcpus, instances: 1, ram: f.ram };
}
