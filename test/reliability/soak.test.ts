// Scenario 7: the soak (10 minutes of mixed load, memory, descriptors, timers and latency
// sampled). Never in CI: it runs only with NODEPOOL_SOAK=1 (minutes: NODEPOOL_SOAK_MINUTES),
// or as part of `node --import tsx bench/faults.ts --soak`.
import { test } from 'node:test';
import { assertClean } from './lib/result.js';
import { SOAK, runSoak } from './scenarios/soak.js';

const minutes = Number(process.env.NODEPOOL_SOAK_MINUTES ?? SOAK.minutes);

test(`soak: ${minutes} minutes of mixed load — RSS flat, no fd or timer leak, p95 stable, nothing lost or leaked`, {
  skip: !process.env.NODEPOOL_SOAK && 'the soak runs only with NODEPOOL_SOAK=1 (or bench/faults.ts --soak)',
  timeout: minutes * 60_000 + 600_000,
}, async () => {
  const r = await runSoak({ ...SOAK, minutes });
  console.log(JSON.stringify(r));
  assertClean(r);
});
