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
  return cur === null || cur === undefined ? 'None' : String(cur);
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
