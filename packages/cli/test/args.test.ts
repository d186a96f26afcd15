// Argument parsing and help: argparse-compatible behaviour and Nodepool's help layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { COMMANDS, COMMAND_NAMES, parseArgs, UsageError } from '../src/args.js';
import { COMMAND_HELP, MAIN_HELP } from '../src/help.js';

const SAMPLES = '/work/shared/docs/nodepool-output-samples';
// (the commands Nodepool 3.x lacks: ours, and image-status/-pause/-unpause, export/import-image-data of later Nodepool)
const OURS = ['hold', 'label-list', 'history', 'stats', 'token', 'image-upload', 'static-host', 'image-status', 'image-pause', 'image-unpause',
  'export-image-data', 'import-image-data'];

test('nodepool -h is Nodepool\'s help with our commands appended', () => {
  const nodepool = readFileSync(`${SAMPLES}/help.txt`, 'utf8');
  let ours = MAIN_HELP.split(`,${OURS.join(',')}}`).join('}');
  ours = ours.split('\n').filter((l) => !OURS.some((c) => l.startsWith(`    ${c} `))).join('\n');
  assert.equal(ours, nodepool);
});

test('every command has help mentioning each of its options', () => {
  for (const name of COMMAND_NAMES) {
    assert.ok(MAIN_HELP.includes(`\n    ${name} `), `${name} in main help`);
    const spec = COMMANDS[name];
    if (spec.passthrough) continue;
    const help = COMMAND_HELP[name] ?? '';
    assert.ok(help.startsWith(`usage: nodepool ${name} `), `${name} help`);
    for (const a of spec.args) {
      const word = a.kind === 'option' ? a.flag : a.metavar;
      assert.ok(help.includes(word), `${name} help mentions ${word}`);
    }
  }
});

function usageError(argv: string[]): string {
  try {
    parseArgs(argv);
  } catch (err) {
    assert.ok(err instanceof UsageError);
    assert.equal(err.exitCode, 2);
    return err.render();
  }
  assert.fail(`no usage error for ${argv.join(' ')}`);
}

test('globals, defaults, and command arguments', () => {
  const r = parseArgs(['-c', '/tmp/np.yaml', '--debug', 'list', '--detail']);
  assert.equal(r.kind, 'command');
  if (r.kind !== 'command') return;
  assert.equal(r.globals.config, '/tmp/np.yaml');
  assert.equal(r.globals.debug, true);
  assert.equal(r.globals.secure, null);
  assert.equal(r.command, 'list');
  assert.equal(r.args.detail, true);

  const d = parseArgs(['list']);
  assert.ok(d.kind === 'command' && d.globals.config === '/etc/nodepool/nodepool.yaml' && d.args.detail === false);

  const i = parseArgs(['-s/etc/sec.yaml', 'image-delete', '--provider=p', '--image', 'img', '--build-id', '1', '--upload-id', '2', '--json']);
  assert.ok(i.kind === 'command');
  if (i.kind !== 'command') return;
  assert.deepEqual({ ...i.args }, { provider: 'p', image: 'img', build_id: '1', upload_id: '2', json: true });
  assert.equal(i.globals.secure, '/etc/sec.yaml');
  assert.equal(i.globals.json, true);

  // unique prefixes, globals after the command (beyond argparse), optional positional
  const p = parseArgs(['list', '--det', '-c', 'x.yaml']);
  assert.ok(p.kind === 'command' && p.args.detail === true && p.globals.config === 'x.yaml');
  const a = parseArgs(['alien-image-list']);
  assert.ok(a.kind === 'command' && a.args.provider === undefined);
  const h = parseArgs(['hold', '42', '--reason', 'debugging a failure']);
  assert.ok(h.kind === 'command' && h.args.id === '42' && h.args.reason === 'debugging a failure');
  const dash = parseArgs(['dib-image-delete', '--', '-odd-0000000001']);
  assert.ok(dash.kind === 'command' && dash.args.id === '-odd-0000000001');
});

test('help, version, no command', () => {
  assert.deepEqual(parseArgs(['-h']), { kind: 'help', text: MAIN_HELP });
  assert.deepEqual(parseArgs(['--help']), { kind: 'help', text: MAIN_HELP });
  assert.deepEqual(parseArgs(['erase', '-h']), { kind: 'help', text: COMMAND_HELP.erase });
  assert.deepEqual(parseArgs(['--version']), { kind: 'version' });
  assert.equal(parseArgs([]).kind, 'no-command');
  assert.equal(parseArgs(['-c', 'x']).kind, 'no-command');
});

test('history and stats get their arguments untouched', () => {
  const r = parseArgs(['-c', 'x.yaml', 'history', '--node', '0000000001', '-h', '--json']);
  assert.ok(r.kind === 'command');
  if (r.kind !== 'command') return;
  assert.equal(r.command, 'history');
  assert.deepEqual(r.rest, ['--node', '0000000001', '-h', '--json']);
});

test('usage errors read like argparse\'s', () => {
  const mainUsage = MAIN_HELP.slice(0, MAIN_HELP.indexOf('\n\n') + 1);
  assert.equal(usageError(['foo']), `${mainUsage}nodepool: error: argument command: invalid choice: 'foo' (choose from ${COMMAND_NAMES.map((c) => `'${c}'`).join(', ')})`);
  assert.equal(usageError(['delete']),
    'usage: nodepool delete [-h] [--now] [--json] id\nnodepool delete: error: the following arguments are required: id');
  assert.equal(usageError(['image-delete', '--provider', 'x']), [
    'usage: nodepool image-delete [-h] --provider PROVIDER --image IMAGE',
    '                             --upload-id UPLOAD_ID --build-id BUILD_ID',
    '                             [--json]',
    'nodepool image-delete: error: the following arguments are required: --image, --upload-id, --build-id',
  ].join('\n'));
  assert.equal(usageError(['list', 'extra']), `${mainUsage}nodepool: error: unrecognized arguments: extra`);
  assert.equal(usageError(['list', '--bogus']), `${mainUsage}nodepool: error: unrecognized arguments: --bogus`);
  assert.equal(usageError(['hold', '1', '--reason']),
    'usage: nodepool hold [-h] [--reason REASON] [--json] id\nnodepool hold: error: argument --reason: expected one argument');
  assert.equal(usageError(['-c']), `${mainUsage}nodepool: error: argument -c: expected one argument`);
  assert.equal(usageError(['erase']),
    'usage: nodepool erase [-h] [--force] [--json] PROVIDER\nnodepool erase: error: the following arguments are required: PROVIDER');
});
