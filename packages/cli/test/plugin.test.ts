// Optional modules (history, stats, image-build --wait) load when present, and are reported
// absent — not as a crash — when not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importOptional } from '../src/plugin.js';

test('importOptional: present module, absent module', async () => {
  const labels = await importOptional('./commands/labels.js');
  assert.equal(typeof labels?.labelListCommand, 'function');
  assert.equal(await importOptional('./commands/no-such-command.js'), null);
});
