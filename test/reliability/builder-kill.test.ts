// Scenario 5: nodepool-builder killed with -9 mid-build and mid-upload while a launcher boots
// nodes from its images (OpenStack simulator) — nothing half-written used, locks released,
// build and upload retried, debris cleaned up.
import { test } from 'node:test';
import { assertClean, type ScenarioResult } from './lib/result.js';
import { CI_BUILDER_KILL, runBuilderKill } from './scenarios/builder-kill.js';

test('builder kill -9 mid-build and mid-upload: no half-written image used, locks released, retried', async (t) => {
  const results: ScenarioResult[] = await runBuilderKill(CI_BUILDER_KILL);
  for (const r of results) {
    console.log(JSON.stringify(r));
    await t.test(r.scenario, () => assertClean(r));
  }
});
