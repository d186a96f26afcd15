// Python str.format-style templates with attribute access, as Nodepool's `hostname-format`
// (`{label.name}-{provider.name}-{node.id}`) and `image-name-format` (`{image_name}-{timestamp}`).

export class FormatError extends Error {
  readonly code = 'EFORMAT';
  constructor(readonly template: string, readonly field: string) {
    super(`format ${JSON.stringify(template)}: unknown field {${field}}`);
    this.name = 'FormatError';
  }
}

function lookup(values: Record<string, unknown>, field: string, template: string): string {
  let cur: unknown = values;
  for (const part of field.split('.')) {
    if (cur === null || typeof cur !== 'object' || !(part in (cur as object))) {
      throw new FormatError(template, field);
    }
    cur = (cur as Record<string, unknown>)[part];
  }
  return pyStr(cur);
}

/** Python's str() of a JSON value: None, True/False, lists and dicts as their repr. */
function pyStr(v: unknown): string {
  return typeof v === 'string' ? v : pyRepr(v);
}

function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'string') {
    const body = v.replace(/\\/g, '\\\\');
    return body.includes("'") && !body.includes('"') ? `"${body}"` : `'${body.replace(/'/g, "\\'")}'`;
  }
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`;
  if (typeof v === 'object') return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(', ')}}`;
  return String(v);
}

export function pyFormat(template: string, values: Record<string, unknown>): string {
  return template.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (m, field: string | undefined) => {
    if (m === '{{') return '{';
    if (m === '}}') return '}';
    return lookup(values, field ?? '', template);
  });
}

export function formatHostname(
  template: string,
  ctx: { label: { name: string }; provider: { name: string }; node: { id: string | null } },
): string {
  return pyFormat(template, ctx);
}
