// Scenario 2 at CI scale: a private three-member ZooKeeper ensemble under load — a member stopped,
// the leader restarted, a session expiry forced on one launcher process.
import { test } from 'node:test';
import { assertClean, type ScenarioResult } from './lib/result.js';
import { CI_ZK_ENSEMBLE, runZkEnsemble } from './scenarios/zk-ensemble.js';

test('ZooKeeper ensemble: member stop, leader restart, forced session expiry', async (t) => {
  const results: ScenarioResult[] = await runZkEnsemble(CI_ZK_ENSEMBLE);
  for (const r of results) {
    console.log(JSON.stringify(r));
    await t.test(r.scenario, () => assertClean(r));
  }
});
