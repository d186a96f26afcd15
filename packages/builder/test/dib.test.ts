// The pure and local parts of the builder: image file naming and checksum discovery (Nodepool's
// DibImageFile tests), the DIB command line and environment, log retention, builder_id.txt,
// progress parsing of real DIB output, failure reasons, the process runner, scheduling decisions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DiskImage } from '@nodepool-ts/core/config';
import { newImageBuild } from '@nodepool-ts/core/model';
import {
  DibImageFile, DibProgressParser, buildsToKeep, dibCommand, dibEnvironment, failureReason, pruneBuildLogs,
  readOrCreateBuilderId, removeBuildFiles, resolveExecutable, runDib, scheduledBuildReason, shellSplit,
} from '../src/index.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'np-dib-'));
}

function diskimage(fields: Partial<DiskImage> = {}): DiskImage {
  return {
    name: 'fake-image', elements: ['fedora', 'vm'], release: '21', envVars: {}, formats: ['qcow2'], rebuildAge: 86400,
    pause: false, username: 'zuul', buildTimeout: 28800, deleteAfterUpload: false, keepFormats: [], pythonPath: null, shellType: null,
    ...fields,
  };
}

test('DibImageFile.fromPath splits at the last dot', () => {
  const image = DibImageFile.fromPath('/foo/bar/myid1234.qcow2');
  assert.equal(image.imageId, 'myid1234');
  assert.equal(image.extension, 'qcow2');
  assert.equal(DibImageFile.fromPath('x-0000000001.qcow2.md5').imageId, 'x-0000000001.qcow2');
});

test('DibImageFile.fromImageId / fromImagesDir find the files of a build', async () => {
  const dir = tmp();
  try {
    writeFileSync(join(dir, 'myid1234.qcow2'), '');
    const one = await DibImageFile.fromImageId(dir, 'myid1234');
    assert.equal(one.length, 1);
    assert.equal(one[0]?.extension, 'qcow2');
    writeFileSync(join(dir, 'myid1234.raw'), '');
    mkdirSync(join(dir, 'myid1234.d'));
    const two = (await DibImageFile.fromImageId(dir, 'myid1234')).sort((a, b) => String(a.extension).localeCompare(String(b.extension)));
    assert.deepEqual(two.map((i) => i.extension), ['qcow2', 'raw']);
    const all = (await DibImageFile.fromImagesDir(dir)).filter((i) => i.extension !== 'd').sort((a, b) => String(a.extension).localeCompare(String(b.extension)));
    assert.deepEqual(all.map((i) => [i.imageId, i.extension]), [['myid1234', 'qcow2'], ['myid1234', 'raw']]);
    assert.deepEqual(await DibImageFile.fromImageId(join(dir, 'missing'), 'myid1234'), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('DibImageFile.toPath reads the checksum files beside the image', async () => {
  const dir = tmp();
  try {
    const image = new DibImageFile('myid1234', 'qcow2');
    assert.equal(await image.toPath('/imagedir'), '/imagedir/myid1234.qcow2');
    assert.equal(await image.toPath('/imagedir/'), '/imagedir/myid1234.qcow2');
    assert.equal(await image.toPath('/imagedir/', false), '/imagedir/myid1234');
    await assert.rejects(new DibImageFile('myid1234').toPath('/imagedir/'), /Cannot specify image extension of None/);
    writeFileSync(join(dir, 'b.qcow2.md5'), `${'a'.repeat(32)}  /x/b.qcow2\n`);
    writeFileSync(join(dir, 'b.qcow2.sha256'), `${'c'.repeat(64)}  /x/b.qcow2\n`);
    const b = new DibImageFile('b', 'qcow2');
    await b.toPath(dir);
    assert.equal(b.md5, 'a'.repeat(32));
    assert.equal(b.sha256, 'c'.repeat(64));
    assert.equal(b.md5File, join(dir, 'b.qcow2.md5'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('removeBuildFiles removes images, checksums, partial outputs and the manifest dir only', async () => {
  const dir = tmp();
  try {
    for (const f of ['img-0000000001.qcow2', 'img-0000000001.qcow2.md5', 'img-0000000001.raw-new', 'img-0000000010.qcow2', 'builder_id.txt']) {
      writeFileSync(join(dir, f), '');
    }
    mkdirSync(join(dir, 'img-0000000001.d', 'sub'), { recursive: true });
    await removeBuildFiles(dir, 'img-0000000001');
    assert.deepEqual(readdirSync(dir).sort(), ['builder_id.txt', 'img-0000000010.qcow2']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('builder_id.txt: a UUID4 created once', async () => {
  const dir = join(tmp(), 'images');
  try {
    const id = await readOrCreateBuilderId(dir);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(await readOrCreateBuilderId(dir), id);
    assert.equal(readFileSync(join(dir, 'builder_id.txt'), 'utf8'), id);
  } finally {
    rmSync(dirname(dir), { recursive: true, force: true });
  }
});

test('dibCommand: Nodepool\'s command line, qemu compat only for qcow2, elements shell-split', () => {
  assert.deepEqual(dibCommand('disk-image-create', ['qcow2', 'vhd'], '/opt/images/img-0000000001', ['ubuntu-minimal', 'vm  growroot']), [
    'disk-image-create', '-x', '-t', 'qcow2,vhd', '--checksum', '--no-tmpfs', '--qemu-img-options', 'compat=0.10',
    '-o', '/opt/images/img-0000000001', 'ubuntu-minimal', 'vm', 'growroot',
  ]);
  assert.deepEqual(dibCommand('/usr/bin/env DIB_X=1 disk-image-create', ['raw'], '/o', ['debian-minimal']), [
    '/usr/bin/env', 'DIB_X=1', 'disk-image-create', '-x', '-t', 'raw', '--checksum', '--no-tmpfs', '-o', '/o', 'debian-minimal',
  ]);
  assert.deepEqual(shellSplit(`a 'b c' "d \\"e\\"" f\\ g`), ['a', 'b c', 'd "e"', 'f g']);
});

test('dibEnvironment: Nodepool variables, env-vars last, our elements appended, the DIB bin dir first on PATH', () => {
  const env = dibEnvironment({ PATH: '/root/.pyenv/shims:/usr/bin:/bin', HOME: '/root', DIB_RELEASE: 'old' }, {
    diskimage: diskimage({ envVars: { TMPDIR: '/opt/dib_tmp', DIB_IMAGE_CACHE: '/opt/dib_cache' } }),
    filename: '/opt/images/fake-image-0000000001', elementsDir: '/etc/nodepool/elements',
    shippedElementsDir: '/src/elements', dibExecutable: '/usr/bin/disk-image-create',
  });
  assert.equal(env.DIB_RELEASE, '21');
  assert.equal(env.DIB_IMAGE_NAME, 'fake-image');
  assert.equal(env.DIB_IMAGE_FILENAME, '/opt/images/fake-image-0000000001');
  assert.equal(env.ELEMENTS_PATH, '/etc/nodepool/elements:/src/elements');
  assert.equal(env.PATH, '/usr/bin:/root/.pyenv/shims:/bin');
  assert.equal(env.TMPDIR, '/opt/dib_tmp');
  assert.equal(env.DIB_IMAGE_CACHE, '/opt/dib_cache');
  assert.equal(env.HOME, '/root');
  const bare = dibEnvironment({ PATH: '/usr/bin' }, {
    diskimage: diskimage({ release: '', envVars: { ELEMENTS_PATH: '/mine' } }), filename: '/o', elementsDir: null,
    shippedElementsDir: null, dibExecutable: null,
  });
  assert.equal(bare.DIB_RELEASE, '');
  assert.equal(bare.ELEMENTS_PATH, '/mine', 'env-vars override everything');
});

test('resolveExecutable finds commands on PATH', async () => {
  assert.equal(await resolveExecutable('sh', '/nonexistent:/bin:/usr/bin'), '/bin/sh');
  assert.equal(await resolveExecutable('no-such-command-here', '/bin:/usr/bin'), null);
});

test('pruneBuildLogs keeps the newest max(retention, 1) logs of exactly this image', async () => {
  const dir = tmp();
  try {
    for (const f of ['img-0000000001.log', 'img-0000000002.log', 'img-0000000003.log', 'img-other-0000000001.log', 'img.txt']) {
      writeFileSync(join(dir, f), '');
    }
    await pruneBuildLogs(dir, 'img', 2);
    assert.deepEqual(readdirSync(dir).sort(), ['img-0000000002.log', 'img-0000000003.log', 'img-other-0000000001.log', 'img.txt']);
    await pruneBuildLogs(dir, 'img', 0);
    assert.deepEqual(readdirSync(dir).sort(), ['img-0000000003.log', 'img-other-0000000001.log', 'img.txt']);
    assert.deepEqual(await pruneBuildLogs(join(dir, 'missing'), 'img', 1), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('progress of a real DIB run (debian-minimal + nodepool-base): phases, scripts and their elements', async () => {
  const text = readFileSync(join(FIXTURES, 'dib-bookworm-ok.log'), 'utf8')
    // the fixture's ELEMENTS_PATH points at this machine's DIB; resolve elements against ours
    .replace(/ELEMENTS_PATH is: \S+/, `ELEMENTS_PATH is: /usr/lib/python3/dist-packages/diskimage_builder/elements:${join(FIXTURES, '..', '..', '..', '..', 'elements')}`);
  const p = new DibProgressParser(0);
  const steps: string[] = [];
  // byte by byte across line boundaries, as a pipe may deliver it; one step per change
  const cut = text.indexOf('\n', text.indexOf('Expanded element dependencies')) + 1;
  p.feed(text.slice(0, cut));
  await p.elementsKnown();
  for (const line of text.slice(cut).split(/(?<=\n)/)) {
    const mid = Math.floor(line.length / 2);
    if (p.feed(line.slice(0, mid))) steps.push(p.snapshot().step ?? '');
    if (p.feed(line.slice(mid))) steps.push(p.snapshot().step ?? '');
  }
  p.end();
  const s = p.snapshot();
  assert.equal(s.completed, true);
  assert.equal(s.running, false);
  if (existsSync('/usr/lib/python3/dist-packages/diskimage_builder/elements/debootstrap')) {
    assert.ok(steps.includes('root.d/08-debootstrap (debootstrap)'), steps.join('\n'));
  }
  assert.ok(steps.includes('install.d/50-nodepool-user (nodepool-base)'), steps.join('\n'));
  assert.ok(steps.includes('extra-data.d/50-nodepool-ssh-key (nodepool-base)'));
  assert.ok(steps.includes('converting image (qemu-img convert)'));
  assert.ok(steps.length > 30 && steps.length < 200, `${steps.length} steps`);
});

test('failure reason of a real failing DIB run names the script, its element and the error line', async () => {
  const text = readFileSync(join(FIXTURES, 'dib-bookworm-fail.log'), 'utf8')
    .replace(/ELEMENTS_PATH is: \S+/, `ELEMENTS_PATH is: ${join(FIXTURES, '..', '..', '..', '..', 'elements')}`);
  const p = new DibProgressParser(0);
  const cut = text.indexOf('\n', text.indexOf('Expanded element dependencies')) + 1;
  p.feed(text.slice(0, cut));
  await p.elementsKnown();
  p.feed(text.slice(cut));
  p.end();
  const reason = failureReason(p.snapshot(), 1, { timedOut: false, timeoutS: 28800, execError: null });
  assert.equal(reason, "install.d/50-nodepool-user of element nodepool-base failed (disk-image-create exit code 1): "
    + "rm: cannot remove '/tmp/in_target.d/nodepool-authorized-keys': Read-only file system");
  assert.match(failureReason(p.snapshot(), 1, { timedOut: true, timeoutS: 60, execError: null }),
    /^build-timeout of 60s exceeded during install\.d\/50-nodepool-user/);
});

test('runDib: merged output in order, Exit code line, progress, exec of a missing command', async () => {
  const dir = tmp();
  try {
    const script = join(dir, 'dib');
    writeFileSync(script, '#!/bin/sh\necho "Running hooks from /x/root.d"\necho "to stderr" >&2\necho "dib-run-parts Running /x/root.d/10-a"\nexit 3\n');
    chmodSync(script, 0o755);
    const logFile = join(dir, 'logs', 'img-0000000001.log');
    const seen: string[] = [];
    const r = await runDib({ argv: [script], env: { PATH: '/usr/bin:/bin' }, logFile, timeoutMs: 10_000, onProgress: (p) => seen.push(p.step ?? '') });
    assert.equal(r.rc, 3);
    assert.equal(r.timedOut, false);
    assert.equal(readFileSync(logFile, 'utf8'), 'Running hooks from /x/root.d\nto stderr\ndib-run-parts Running /x/root.d/10-a\nExit code: 3\n');
    assert.equal(seen.at(-1), 'root.d/10-a');
    assert.equal(r.progress.running, true);
    const missing = await runDib({ argv: [join(dir, 'nope')], env: {}, logFile: join(dir, 'l2.log'), timeoutMs: 10_000 });
    assert.equal(missing.rc, 127);
    assert.match(readFileSync(join(dir, 'l2.log'), 'utf8'), /not found|No such file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('runDib: a timeout kills the whole process group, even a child that ignores SIGTERM', async () => {
  const dir = tmp();
  try {
    const marker = `${100 + Math.floor(Math.random() * 1000)}.5`;
    const script = join(dir, 'dib');
    writeFileSync(script, `#!/bin/bash\n(trap '' TERM; exec sleep ${marker}) &\necho started\nwait\n`);
    chmodSync(script, 0o755);
    const started = Date.now();
    const r = await runDib({ argv: [script], env: { PATH: '/usr/bin:/bin' }, logFile: join(dir, 'x.log'), timeoutMs: 300, killGraceMs: 300 });
    assert.equal(r.timedOut, true);
    assert.equal(r.rc, 1);
    assert.ok(Date.now() - started < 5000);
    assert.equal(readFileSync(join(dir, 'x.log'), 'utf8'), 'started\n');
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(spawnSync('pgrep', ['-f', `sleep ${marker}`]).status, 1, 'no survivor');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('runDib: an unwritable log does not stall the build', async () => {
  const dir = tmp();
  try {
    const script = join(dir, 'dib');
    writeFileSync(script, '#!/bin/sh\nhead -c 2000000 /dev/zero | tr "\\0" "x"\necho\nexit 0\n');
    chmodSync(script, 0o755);
    writeFileSync(join(dir, 'file'), '');
    const r = await runDib({ argv: [script], env: { PATH: '/usr/bin:/bin' }, logFile: join(dir, 'file', 'x.log'), timeoutMs: 10_000 });
    assert.equal(r.rc, 0);
    assert.ok(r.logError !== null);
    assert.equal(existsSync(join(dir, 'file', 'x.log')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('scheduledBuildReason: missing build, rebuild-age, missing formats, pause', () => {
  const now = 1_000_000;
  const di = diskimage({ formats: ['qcow2', 'vhd'], rebuildAge: 3600 });
  assert.equal(scheduledBuildReason(di, null, now), 'no ready build');
  const fresh = newImageBuild({ id: '0000000001', state: 'ready', state_time: now - 10, formats: ['qcow2', 'vhd'] });
  assert.equal(scheduledBuildReason(di, fresh, now), null);
  assert.match(scheduledBuildReason(di, { ...fresh, state_time: now - 3600 }, now) ?? '', /rebuild-age/);
  assert.match(scheduledBuildReason(di, { ...fresh, formats: ['qcow2'] }, now) ?? '', /formats vhd missing/);
  assert.equal(scheduledBuildReason({ ...di, pause: true }, null, now), null);
});

test('buildsToKeep: the 2 newest ready builds by state_time', () => {
  const b = (id: string, state: 'ready' | 'failed' | 'building', t: number) => newImageBuild({ id, state, state_time: t });
  assert.deepEqual([...buildsToKeep([b('1', 'ready', 1), b('2', 'ready', 3), b('3', 'failed', 9), b('4', 'ready', 2), b('5', 'building', 10)])].sort(), ['2', '4']);
});
