// Scenario 1 at CI scale (bench/faults.ts runs it bigger): kill -9 of one of three launcher
// processes mid-launch under a steady load — nothing lost, leaked or allocated twice.
import { test } from 'node:test';
import { assertClean } from './lib/result.js';
import { CI_LAUNCHER_KILL, runLauncherKill } from './scenarios/launcher-kill.js';

test('kill -9 of one of three launchers mid-launch: requests taken over, nothing lost, leaked or allocated twice', async () => {
  const r = await runLauncherKill(CI_LAUNCHER_KILL);
  console.log(JSON.stringify(r));
  assertClean(r);
});
