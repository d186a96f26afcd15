// A small seedable PRNG (mulberry32) so fault injection replays identically for a given seed:
// a failing test can be rerun with the same NODEPOOL_FAKE_SEED and fail the same way.

export class Prng {
  private state: number;
  readonly seed: number;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.state = this.seed;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /**
   * True with probability p. Rates of 0 and 1 consume no draw, so switching one fault fully
   * on or off does not shift the sequence the other faults see.
   */
  chance(p: number): boolean {
    if (!(p > 0)) return false;
    if (p >= 1) return true;
    return this.next() < p;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** Numbers are used as is; any other string is hashed (FNV-1a) so "ci-42" is a valid seed. */
export function parseSeed(seed: number | string): number {
  if (typeof seed === 'number') return seed >>> 0;
  const trimmed = seed.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) >>> 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < trimmed.length; i++) {
    h ^= trimmed.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
