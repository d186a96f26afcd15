// Scenario 6: 1,000 malformed request znodes, 1,000 malformed node znodes and a corrupted config
// reload while two launcher processes serve a steady load.
import { test } from 'node:test';
import { assertClean } from './lib/result.js';
import { CI_BAD_INPUT, runBadInput } from './scenarios/bad-input.js';

test('bad input at scale: each rejected with a log line, good requests served, previous config in force', async () => {
  const r = await runBadInput(CI_BAD_INPUT);
  console.log(JSON.stringify(r));
  assertClean(r);
});
