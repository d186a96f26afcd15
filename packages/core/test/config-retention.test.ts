import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, validateConfig } from '@nodepool-ts/core/config';

test('history-retention-days: unset keeps everything; a number is passed to the recorder; a string is an error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'np-cfg-'));
  try {
    const base = 'zookeeper-servers:\n  - host: localhost\n';
    writeFileSync(join(dir, 'a.yaml'), base);
    assert.equal((await loadConfig(join(dir, 'a.yaml'))).historyRetentionDays, null);
    writeFileSync(join(dir, 'b.yaml'), `${base}history-retention-days: 90\n`);
    assert.equal((await loadConfig(join(dir, 'b.yaml'))).historyRetentionDays, 90);
    writeFileSync(join(dir, 'c.yaml'), `${base}history-retention-days: soon\n`);
    const issues = await validateConfig(join(dir, 'c.yaml'));
    assert.equal(issues.length, 1);
    assert.equal(issues[0]?.keyPath, 'history-retention-days');
    assert.equal(issues[0]?.line, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
