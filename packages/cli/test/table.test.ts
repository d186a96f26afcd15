// The PrettyTable-compatible formatter against the real Nodepool output samples.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cellText, formatObjects, formatTable, textWidth } from '../src/table.js';

const SAMPLES = '/work/shared/docs/nodepool-output-samples';

/** Split a PrettyTable text back into header and rows (cells right-trimmed). */
function parseTable(text: string): { header: string[]; rows: string[][] } {
  const lines = text.split('\n').filter((l) => l.startsWith('|'));
  const cells = lines.map((l) => l.slice(2, -2).split(' | ').map((c) => c.trimEnd()));
  const [header = [], ...rows] = cells;
  return { header, rows };
}

const tableSamples = readdirSync(SAMPLES).filter((f) =>
  f.endsWith('.txt') && !f.includes('headers') && !f.includes('stderr') && !f.startsWith('info')
  && readFileSync(join(SAMPLES, f), 'utf8').startsWith('+'));

test('samples are present', () => {
  assert.ok(tableSamples.length >= 10, `found ${tableSamples.join(', ')}`);
});

for (const file of tableSamples) {
  test(`re-rendering ${file} gives the same bytes`, () => {
    const text = readFileSync(join(SAMPLES, file), 'utf8');
    const { header, rows } = parseTable(text);
    const rendered = formatTable(header, rows);
    // the CLI prints the table with a newline; the web API serves it without one
    const expected = text.endsWith('\n') ? text.slice(0, -1) : text;
    assert.equal(rendered, expected);
  });
}

test('empty table: border, header, border, border', () => {
  assert.equal(formatTable(['Label'], []), '+-------+\n| Label |\n+-------+\n+-------+');
});

test('cells: None, lists joined without space, numbers, booleans', () => {
  assert.equal(cellText(null), 'None');
  assert.equal(cellText(undefined), 'None');
  assert.equal(cellText(['a', 'b']), 'a,b');
  assert.equal(cellText([]), '');
  assert.equal(cellText(22), '22');
  assert.equal(cellText(true), 'True');
  assert.equal(cellText(Infinity), 'inf');
  assert.equal(formatTable(['A', 'B'], [[null, ['x', 'y']]]),
    '+------+-----+\n| A    | B   |\n+------+-----+\n| None | x,y |\n+------+-----+');
});

test('width counts code points, wide CJK as two columns (as PrettyTable does)', () => {
  assert.equal(textWidth('héllo'), 5);
  assert.equal(textWidth('e\u0301'), 1);
  assert.equal(textWidth('😀'), 2);
  assert.equal(textWidth('漢字'), 4);
  // checked against python3-prettytable
  assert.equal(formatTable(['A', 'Bé'], [['x\nlonger line', null], ['', 'ü漢'], [3, true]]), [
    '+-------------+------+',
    '| A           | Bé   |',
    '+-------------+------+',
    '| x           | None |',
    '| longer line |      |',
    '|             | ü漢  |',
    '| 3           | True |',
    '+-------------+------+',
  ].join('\n'));
});

test('formatObjects selects fields by key, keeping table order', () => {
  const cols = [{ key: 'id', title: 'ID' }, { key: 'image', title: 'Image' }, { key: 'state', title: 'State' }];
  const text = formatObjects(cols, [{ id: '0000000001', image: 'fake-image', state: 'ready' }], ['state', 'id']);
  assert.equal(text.split('\n')[3], '| 0000000001 | ready |');
  assert.equal(formatObjects(cols, [], null).split('\n')[1], '| ID | Image | State |');
});
