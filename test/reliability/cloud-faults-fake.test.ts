// Scenario 4 on the fake cloud (faults switched by rewriting nodepool.yaml; two launcher
// processes share the cloud's state file): API errors, servers stuck in BUILD or ERROR, quota
// exceeded mid-run, deletes that fail or never complete.
import { test } from 'node:test';
import { assertClean, type ScenarioResult } from './lib/result.js';
import { CI_CLOUD_FAULTS, FAULTS, runCloudFaults } from './scenarios/cloud-faults.js';

test('fake cloud faults under load: retried with backoff, failed cleanly, nothing lost or leaked', async (t) => {
  const results: ScenarioResult[] = await runCloudFaults(CI_CLOUD_FAULTS, 'fake');
  for (const r of results) {
    console.log(JSON.stringify(r));
    const spec = FAULTS.find((f) => r.scenario.startsWith(f.title));
    await t.test(r.scenario, () => assertClean(r, { allowFailed: spec?.mayFail ?? false }));
  }
});
