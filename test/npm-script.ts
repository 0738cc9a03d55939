/**
 * The commands of package.json's scripts as they are now, so that tests and benchmarks run what
 * `npm start` runs (the compiled build in dist/, which `npm test` and `npm run bench` build first).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');

/** The command of an npm script (`start`, `start:api`, `start:controller`). */
export function npmScript(name: string): string {
  const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    scripts?: Record<string, string>;
  };
  const command = manifest.scripts?.[name];
  if (!command) throw new Error(`package.json has no script "${name}"`);
  return command;
}

/** Node's arguments in a script of the form `exec node <arguments>`, to spawn with process.execPath. */
export function npmScriptNodeArgs(name: string): string[] {
  const match = /^exec node (.+)$/.exec(npmScript(name));
  if (!match) throw new Error(`package.json's script "${name}" is not "exec node …"`);
  return match[1]!.split(' ').map((arg) => (arg.endsWith('.js') ? path.join(ROOT, arg) : arg));
}
