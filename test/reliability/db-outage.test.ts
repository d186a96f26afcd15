// Scenario 3 at CI scale (20 s outage; bench/faults.ts holds it for minutes): a private MariaDB
// stopped under load — fulfilment unaffected, every event in the database once it is back.
import { test } from 'node:test';
import { assertClean } from './lib/result.js';
import { mariadbAvailable } from './lib/services.js';
import { CI_DB_OUTAGE, runDbOutage } from './scenarios/db-outage.js';

test('MariaDB stopped under load: fulfilment unaffected, every event present after it returns', { skip: !mariadbAvailable() && 'mariadb-server is not installed' }, async () => {
  const r = await runDbOutage(CI_DB_OUTAGE);
  console.log(JSON.stringify(r));
  assertClean(r);
});
