// Scenario 4 on the OpenStack API simulator (scripts/openstack-sim.sh; faults through its admin
// API at run time), two launcher processes with the openstack driver: Nova answering HTTP 500,
// servers stuck in BUILD or ERROR, "quota exceeded", deletes that fail or hang.
import { test } from 'node:test';
import { assertClean, type ScenarioResult } from './lib/result.js';
import { CI_CLOUD_FAULTS, FAULTS, runCloudFaults } from './scenarios/cloud-faults.js';

test('OpenStack simulator faults under load: retried with backoff, failed cleanly, nothing lost or leaked', async (t) => {
  const results: ScenarioResult[] = await runCloudFaults(CI_CLOUD_FAULTS, 'openstack-sim');
  for (const r of results) {
    console.log(JSON.stringify(r));
    const spec = FAULTS.find((f) => r.scenario.startsWith(f.title));
    await t.test(r.scenario, () => assertClean(r, { allowFailed: spec?.mayFail ?? false }));
  }
});
