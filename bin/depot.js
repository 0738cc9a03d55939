#!/usr/bin/env node
// `npx depot …`: runs the admin CLI (broker/admin/main.ts) through tsx, whatever the working
// directory, with this Node, its arguments and its exit code.
import { spawn } from 'node:child_process';
import process from 'node:process';
import { fileURLToPath, URL } from 'node:url';

const entry = fileURLToPath(new URL('../broker/admin/main.ts', import.meta.url));
const tsx = import.meta.resolve('tsx');
const child = spawn(process.execPath, ['--import', tsx, entry, ...process.argv.slice(2)], { stdio: 'inherit' });
const forward = (signal) => child.kill(signal);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, forward);
child.on('exit', (code, signal) => {
  if (!signal) process.exit(code ?? 1);
  // The child died of a signal: so does the launcher (its own handlers removed first).
  process.removeListener('SIGINT', forward).removeListener('SIGTERM', forward);
  process.kill(process.pid, signal);
});
