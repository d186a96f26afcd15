#!/usr/bin/env node
import { main } from '../dist/main.js';
// `nodepool list | head`: a reader that stops early ends the listing quietly
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
