// `-l LOGCONFIG`: nodepool-ts's own form, and the Python logging files Nodepool operators have
// (dictConfig YAML, ini fileConfig); and a log file that is moved away is reopened.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configureLogging, currentLogFile, getLogger, levelName, parseLogConfig, readLogConfig, LogConfigError } from '@nodepool-ts/core/log';

test('nodepool-ts form: level and file; a relative file is read next to the config', () => {
  assert.deepEqual(parseLogConfig('level: debug\nfile: /var/log/nodepool/launcher.log\n', '/etc/nodepool/log.yaml'),
    { form: 'nodepool-ts', level: 'debug', file: '/var/log/nodepool/launcher.log', notes: [] });
  assert.deepEqual(parseLogConfig('level: WARNING\nfile: logs/l.log\n', '/etc/nodepool/log.yaml'),
    { form: 'nodepool-ts', level: 'warn', file: '/etc/nodepool/logs/l.log', notes: [] });
  assert.deepEqual(parseLogConfig('', '/x.yaml'), { form: 'nodepool-ts', notes: [] });
});

test('bad log configs name the file and what is wrong', () => {
  assert.throws(() => parseLogConfig('levle: info\n', '/etc/l.yaml'),
    { name: 'LogConfigError', message: /^\/etc\/l\.yaml: unknown key levle \(expected level and file, or a Python logging dictConfig with version: 1\)$/ });
  assert.throws(() => parseLogConfig('level: loud\n', '/etc/l.yaml'), /^LogConfigError: \/etc\/l\.yaml: level: expected one of debug/);
  assert.throws(() => parseLogConfig('version: 2\n', '/etc/l.yaml'), /knows only version 1, got 2/);
  assert.throws(() => parseLogConfig('version: 1\nroot:\n  handlers: [nope]\n', '/etc/l.yaml'),
    /\/etc\/l\.yaml: logger handler nope is not defined under handlers/);
  assert.throws(() => parseLogConfig('[loggers]\nkeys=root\n', '/etc/l.conf'), /there is no \[logger_root\] section/);
  assert.throws(() => readLogConfig('/nonexistent/l.yaml'), (err: Error) => err instanceof LogConfigError && /^\/nonexistent\/l\.yaml: cannot read/.test(err.message));
});

test('Python levels: names and numbers, NOTSET inherits', () => {
  assert.equal(levelName('DEBUG'), 'debug');
  assert.equal(levelName('Warning'), 'warn');
  assert.equal(levelName('CRITICAL'), 'fatal');
  assert.equal(levelName(20), 'info');
  assert.equal(levelName('40'), 'error');
  assert.equal(levelName('NOTSET'), null);
  assert.equal(levelName('loud'), undefined);
});

const DICT = `version: 1
disable_existing_loggers: false
formatters:
  plain:
    format: '%(asctime)s %(levelname)s %(name)s: %(message)s'
handlers:
  console:
    class: logging.StreamHandler
    stream: ext://sys.stdout
    level: WARNING
  debugfile:
    class: logging.handlers.WatchedFileHandler
    filename: /var/log/nodepool/launcher-debug.log
    formatter: plain
loggers:
  nodepool:
    level: DEBUG
    handlers: [debugfile]
  kazoo:
    level: INFO
    handlers: [console]
root:
  level: WARNING
  handlers: [console]
`;

test("dictConfig: the nodepool logger's level and file handler; what is not applied is noted", () => {
  const s = parseLogConfig(DICT, '/etc/nodepool/logging.yaml');
  assert.equal(s.form, 'dictConfig');
  assert.equal(s.level, 'debug');
  assert.equal(s.file, '/var/log/nodepool/launcher-debug.log');
  assert.equal(s.stream, undefined);
  assert.deepEqual(s.notes, [
    'only one destination is used (/var/log/nodepool/launcher-debug.log); 1 other handler(s) of the file are not',
    "loggers other than nodepool and root are Python libraries' and do not apply: kazoo",
    'formatters are not applied: nodepool-ts writes JSON lines',
  ]);
  // without propagation only the nodepool logger's own handlers count; a handler level raises the level
  const own = parseLogConfig(DICT.replace('    handlers: [debugfile]\n', '    handlers: [console]\n    propagate: false\n'), '/x.yaml');
  assert.deepEqual([own.level, own.file, own.stream], ['warn', undefined, 'stdout']);
  // no nodepool logger: the root logger's
  const rootOnly = parseLogConfig('version: 1\nhandlers:\n  f:\n    class: logging.FileHandler\n    filename: np.log\n    level: INFO\nroot:\n  level: DEBUG\n  handlers: [f]\n', '/etc/np/l.yaml');
  assert.deepEqual([rootOnly.level, rootOnly.file], ['info', '/etc/np/np.log']);
});

const INI = `# the launcher's logging
[loggers]
keys=root,nodepool,openstack

[handlers]
keys=console,normal

[formatters]
keys=simple

[logger_root]
level=WARNING
handlers=console

[logger_nodepool]
level=INFO
handlers=normal
qualname=nodepool
propagate=0

[logger_openstack]
level=DEBUG
handlers=normal
qualname=openstack

[handler_console]
level=WARNING
class=StreamHandler
formatter=simple
args=(sys.stdout,)

[handler_normal]
level=DEBUG
class=logging.handlers.TimedRotatingFileHandler
formatter=simple
args=('/var/log/nodepool/nodepool.log', 'midnight')

[formatter_simple]
format=%(asctime)s %(levelname)s %(name)s: %(message)s
datefmt=
`;

test('ini fileConfig: qualname nodepool, its FileHandler args; rotation left to logrotate', () => {
  const s = parseLogConfig(INI, '/etc/nodepool/logging.conf');
  assert.equal(s.form, 'fileConfig');
  assert.equal(s.level, 'info');
  assert.equal(s.file, '/var/log/nodepool/nodepool.log');
  assert.ok(s.notes.some((n) => /TimedRotatingFileHandler is not rotated by nodepool-ts: rotate with logrotate/.test(n)));
  assert.ok(s.notes.some((n) => /do not apply: openstack/.test(n)));
  const stdout = parseLogConfig(INI.replace('handlers=normal\nqualname=nodepool', 'handlers=console\nqualname=nodepool'), '/l.conf');
  assert.deepEqual([stdout.level, stdout.stream, stdout.file], ['warn', 'stdout', undefined]);
  const kw = parseLogConfig(INI.replace("args=('/var/log/nodepool/nodepool.log', 'midnight')", "args=()\nkwargs={'filename': 'rel.log'}"), '/etc/np/l.conf');
  assert.equal(kw.file, '/etc/np/rel.log');
});

test('a log file moved away (logrotate) is reopened under its name; SIGHUP reopens it too', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'np-log-'));
  try {
    const file = join(dir, 'sub', 'launcher.log');
    configureLogging({ level: 'info', destination: file });
    assert.equal(currentLogFile(), file);
    const log = getLogger('nodepool.test');
    log.info('before rotation');
    renameSync(file, `${file}.1`);
    log.info('into the moved file');
    // the file's identity is checked every second
    let seen = false;
    for (let i = 0; i < 50 && !seen; i++) {
      await new Promise((r) => setTimeout(r, 100));
      log.info(`after rotation ${i}`);
      try {
        seen = readFileSync(file, 'utf8').includes('after rotation');
      } catch {
        seen = false;
      }
    }
    assert.ok(seen, 'a new file under the old name receives the log');
    const old = readFileSync(`${file}.1`, 'utf8');
    assert.match(old, /before rotation/);
    assert.match(old, /into the moved file/);
    // logrotate's copy/truncate-free postrotate: SIGHUP
    renameSync(file, `${file}.2`);
    writeFileSync(file, '');
    process.emit('SIGHUP', 'SIGHUP');
    log.info('after SIGHUP');
    assert.match(readFileSync(file, 'utf8'), /after SIGHUP/);
    const line = JSON.parse(readFileSync(file, 'utf8').trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    assert.equal(line.name, 'nodepool.test');
    assert.equal(line.level, 'info');
  } finally {
    configureLogging({ destination: 2 });
    assert.equal(currentLogFile(), null);
    rmSync(dir, { recursive: true, force: true });
  }
});
