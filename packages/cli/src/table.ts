// Text tables laid out exactly like Python's PrettyTable as Nodepool configures it
// (`t.align = 'l'`): every column left-aligned, one space of padding, `+---+` rule lines, a header
// row, `None` for null. Shared by the CLI (which prints the table followed by a newline, like
// Python's print) and the launcher's web API (which serves the same text WITHOUT a final newline).

export type Cell = string | number | boolean | null | undefined | readonly string[];

/** Python's str() of a cell value, with Nodepool's list rendering (`','.join`, no space). */
export function cellText(value: Cell): string {
  if (value === null || value === undefined) return 'None';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number') return pythonNumber(value);
  if (typeof value === 'string') return value;
  return value.join(',');
}

function pythonNumber(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (n === Infinity) return 'inf';
  if (n === -Infinity) return '-inf';
  return String(n);
}

// Display width of one code point the way PrettyTable measures it: CJK ideographs, kana, Hangul
// and full-width forms take two columns, combining marks none, everything else one. For ASCII
// and Latin text this is simply the number of code points.
const COMBINING = /\p{M}/u;
function charWidth(ch: string): number {
  const cp = ch.codePointAt(0) ?? 0;
  if (cp >= 0x20 && cp <= 0x7e) return 1;
  if (
    (cp >= 0x1100 && cp <= 0x115f) || // Hangul Jamo initials
    (cp >= 0x2e80 && cp <= 0x303e) || // CJK radicals, punctuation
    (cp >= 0x3040 && cp <= 0x33ff) || // kana, CJK compatibility
    (cp >= 0x3400 && cp <= 0x4dbf) || // CJK extension A
    (cp >= 0x4e00 && cp <= 0x9fff) || // CJK unified ideographs
    (cp >= 0xa000 && cp <= 0xa4cf) || // Yi
    (cp >= 0xac00 && cp <= 0xd7a3) || // Hangul syllables
    (cp >= 0xf900 && cp <= 0xfaff) || // CJK compatibility ideographs
    (cp >= 0xfe30 && cp <= 0xfe4f) || // CJK compatibility forms
    (cp >= 0xff00 && cp <= 0xff60) || // full-width forms
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1f64f) || // emoji
    (cp >= 0x1f900 && cp <= 0x1f9ff) ||
    (cp >= 0x20000 && cp <= 0x3fffd) // CJK extensions B..
  ) return 2;
  if (COMBINING.test(ch)) return 0;
  return 1;
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** Width of a single line of text in terminal columns (see charWidth). */
export function textWidth(text: string): number {
  if (PRINTABLE_ASCII.test(text)) return text.length;
  let w = 0;
  for (const ch of text) w += charWidth(ch);
  return w;
}

/** A cell of several text lines: each line and its width. */
interface Block {
  lines: string[];
  lineWidths: number[];
}

function block(text: string): Block {
  const lines = text.split('\n');
  return { lines, lineWidths: lines.map(textWidth) };
}

/** `text` (of display width `has`) padded with spaces to `width`. */
function pad(text: string, has: number, width: number): string {
  return width > has ? text + ' '.repeat(width - has) : text;
}

/**
 * Render a table. `rows` must have one cell per column. A cell containing newlines spans several
 * text lines, as in PrettyTable. No trailing newline.
 *
 * Written for 10,000-row listings: each cell's text and width are kept in two flat arrays (one
 * entry per cell, row after row) and only a cell of several lines gets an object of its own.
 */
export function formatTable(columns: readonly string[], rows: readonly (readonly Cell[])[]): string {
  return render(columns, rows.length, (r, i) => (rows[r] as readonly Cell[])[i]);
}

/** formatTable of `count` rows whose cells `cellAt(row, column)` gives. */
function render(columns: readonly string[], count: number, cellAt: (row: number, col: number) => Cell): string {
  if (columns.length === 0) return '++\n||\n++\n++'; // what PrettyTable prints without fields
  const n = columns.length;
  const cells = (count + 1) * n;
  const texts = new Array<string>(cells);
  const cellWidths = new Array<number>(cells);
  /** cells of several lines, by index in texts */
  const blocks = new Map<number, Block>();
  const widths = new Array<number>(n).fill(0);
  const put = (k: number, text: string, col: number): void => {
    texts[k] = text;
    let w: number;
    if (text.includes('\n')) {
      const b = block(text);
      blocks.set(k, b);
      w = Math.max(...b.lineWidths);
    } else {
      w = textWidth(text);
    }
    cellWidths[k] = w;
    if (w > (widths[col] ?? 0)) widths[col] = w;
  };
  for (let i = 0; i < n; i++) put(i, columns[i] ?? '', i);
  for (let r = 0; r < count; r++) {
    const base = (r + 1) * n;
    for (let i = 0; i < n; i++) put(base + i, cellText(cellAt(r, i)), i);
  }
  const rule = '+' + widths.map((w) => '-'.repeat(w + 2)).join('+') + '+';
  const out: string[] = [rule];
  const emit = (base: number): void => {
    let height = 1;
    for (let i = 0; i < n; i++) {
      const b = blocks.size === 0 ? undefined : blocks.get(base + i);
      if (b !== undefined && b.lines.length > height) height = b.lines.length;
    }
    if (height === 1) {
      let line = '|';
      for (let i = 0; i < n; i++) line += ' ' + pad(texts[base + i] ?? '', cellWidths[base + i] ?? 0, widths[i] ?? 0) + ' |';
      out.push(line);
      return;
    }
    for (let l = 0; l < height; l++) {
      let line = '|';
      for (let i = 0; i < n; i++) {
        const b = blocks.get(base + i);
        const text = b !== undefined ? b.lines[l] ?? '' : l === 0 ? texts[base + i] ?? '' : '';
        const has = b !== undefined ? b.lineWidths[l] ?? 0 : l === 0 ? cellWidths[base + i] ?? 0 : 0;
        line += ' ' + pad(text, has, widths[i] ?? 0) + ' |';
      }
      out.push(line);
    }
  };
  emit(0);
  out.push(rule);
  for (let r = 0; r < count; r++) emit((r + 1) * n);
  out.push(rule);
  return out.join('\n');
}

/** A table definition: internal keys (the JSON keys of the web API) mapped to column titles. */
export interface Column<K extends string = string> {
  key: K;
  title: string;
}

/**
 * Render objects keyed by column key, optionally restricted to `fields` (the web API's
 * `fields=a,b` selection; unknown keys are ignored, order stays the table's).
 */
export function formatObjects<K extends string>(
  columns: readonly Column<K>[],
  objects: readonly Readonly<Record<K, Cell>>[],
  fields?: readonly string[] | null,
): string {
  const shown = fields && fields.length > 0 ? columns.filter((c) => fields.includes(c.key)) : columns;
  const keys = shown.map((c) => c.key);
  return render(shown.map((c) => c.title), objects.length, (r, i) => (objects[r] as Readonly<Record<K, Cell>>)[keys[i] as K]);
}
