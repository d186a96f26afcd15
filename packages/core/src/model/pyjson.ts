// Python `json.dumps` compatible output and `json.loads`-like tolerant input.
//
// Nodepool, Zuul and the Python CLI write every znode with `json.dumps(obj)` (default
// separators `", "` / `": "`, ensure_ascii, no key sorting). We write the same bytes so that a
// znode rewritten by us is indistinguishable from one rewritten by Nodepool.

/** A number that must be written the way Python writes a float (`1.0`, `1e-05`, `1e+16`). */
export class PyFloat {
  constructor(readonly value: number) {}
  toJSON(): number {
    return this.value;
  }
  valueOf(): number {
    return this.value;
  }
}

/** Python's `repr(float)`: shortest round-trip digits, exponent form when decpt <= -4 or > 16. */
export function pyFloatRepr(n: number): string {
  // the common case (timestamps): both languages print the shortest round-trip digits in fixed
  // notation between 1e-4 and 1e16, and Python adds `.0` to an integral float
  const abs = Math.abs(n);
  if (abs >= 1e-4 && abs < 1e16) return Number.isInteger(n) ? `${n}.0` : String(n);
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return 'Infinity';
  if (n === -Infinity) return '-Infinity';
  if (n === 0) return Object.is(n, -0) ? '-0.0' : '0.0';
  const sign = n < 0 ? '-' : '';
  // toExponential() without an argument gives the shortest digits that round-trip, like repr.
  const exp = Math.abs(n).toExponential();
  const eAt = exp.indexOf('e');
  const digits = exp.slice(0, eAt).replace('.', '');
  const e = Number(exp.slice(eAt + 1));
  const decpt = e + 1;
  if (decpt <= -4 || decpt > 16) {
    const mant = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const ee = Math.abs(e);
    return `${sign}${mant}e${e < 0 ? '-' : '+'}${ee < 10 ? '0' : ''}${ee}`;
  }
  if (decpt <= 0) return `${sign}0.${'0'.repeat(-decpt)}${digits}`;
  if (decpt >= digits.length) return `${sign}${digits}${'0'.repeat(decpt - digits.length)}.0`;
  return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
}

/** A JS number as Python would print the int or float it was read as (integral ⇒ int). */
function pyNumber(n: number): string {
  if (Number.isInteger(n)) {
    return Number.isSafeInteger(n) ? String(n) : BigInt(n).toString();
  }
  return pyFloatRepr(n);
}

const SAFE_STRING = /^[ !#-[\]-~]*$/;
const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t',
};

/** Python's ensure_ascii string encoding: everything outside 0x20..0x7e escaped as \uXXXX (lower hex). */
export function pyString(s: string): string {
  if (SAFE_STRING.test(s)) return `"${s}"`;
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] as string;
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e && ch !== '"' && ch !== '\\') {
      out += ch;
      continue;
    }
    const short = SHORT_ESCAPES[ch];
    // UTF-16 code units are escaped one by one, which yields Python's surrogate pairs.
    out += short ?? `\\u${c.toString(16).padStart(4, '0')}`;
  }
  return out + '"';
}

/** `json.dumps(value)` byte for byte (keys in insertion order; undefined written as null). */
export function pythonJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return pyString(value);
    case 'number':
      return pyNumber(value);
    case 'bigint':
      return value.toString();
    case 'boolean':
      return value ? 'true' : 'false';
    case 'undefined':
      return 'null';
    case 'object': {
      if (value === null) return 'null';
      if (value instanceof PyFloat) return pyFloatRepr(value.value);
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ', ';
          out += pythonJson(value[i]);
        }
        return out + ']';
      }
      let out = '{';
      let first = true;
      for (const [k, v] of Object.entries(value)) {
        if (!first) out += ', ';
        first = false;
        out += `${pyString(k)}: ${pythonJson(v)}`;
      }
      return out + '}';
    }
    default:
      // functions and symbols have no JSON form; Python would raise, we refuse the same way.
      throw new TypeError(`Object of type ${typeof value} is not JSON serializable`);
  }
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Decode znode bytes the way Nodepool does (`json.loads(data.decode('utf8'))`) but never throw:
 * empty data, invalid UTF-8, malformed JSON or a non-object top level give null.
 */
export function parseJsonObject(data: Buffer | Uint8Array | string | null | undefined): Record<string, unknown> | null {
  if (data === null || data === undefined || data.length === 0) return null;
  let text: string;
  if (typeof data === 'string') {
    text = data;
  } else {
    try {
      text = decoder.decode(data);
    } catch {
      return null;
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
  return parsed as Record<string, unknown>;
}
