/**
 * `depot`, the admin CLI (bin/depot.js runs this file through tsx): the broker's state, as an
 * operator needs to see it, without psql. Never migrates, never prints a credential unless
 * --show-credentials is given.
 */
import { runCli } from './cli.js';

const code = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
process.exitCode = code;
// Everything is closed by now; a handle left open (a reconnecting client) must not keep the CLI.
setTimeout(() => process.exit(code), 2000).unref();
