// The shipped systemd units are valid (systemd-analyze verify), where systemd-analyze exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const analyze = '/usr/bin/systemd-analyze';

for (const unit of ['nodepool-launcher.service', 'nodepool-builder.service']) {
  test(`etc/systemd/${unit} passes systemd-analyze verify`, { skip: !existsSync(analyze) && 'systemd-analyze not installed' }, () => {
    const r = spawnSync(analyze, ['verify', `etc/systemd/${unit}`], { encoding: 'utf8' });
    // verify prints warnings about the unit itself on stderr and exits non-zero on errors
    const ours = r.stderr.split('\n').filter((l) => l.includes(unit));
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(ours, []);
  });
}
