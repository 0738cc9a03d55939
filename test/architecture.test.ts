/**
 * The rooms of the tree and their one-way doors (docs/architecture.md): every import of the
 * production code is checked against the rules, so a forbidden one fails `npm test`.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** What each room may import besides itself and npm packages. */
export const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  osb: [],
  runtime: [],
  broker: ['osb', 'runtime'],
  testing: ['osb', 'runtime', 'broker'],
  'catalog-controller': ['osb', 'runtime'],
};
/** The one door that goes the other way: the broker loads testing/ when TEST_OFFERING=enabled. */
const ON_DEMAND = [{ file: 'broker/depot.ts', target: 'testing' }];

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/g;

/** Each relative import of a source file as [room it points into, whether it is import(…)]. */
export function importsOf(file: string, text: string): Array<{ target: string; dynamic: boolean }> {
  const out: Array<{ target: string; dynamic: boolean }> = [];
  for (const match of text.matchAll(IMPORT)) {
    const specifier = match[1] ?? match[2]!;
    if (!specifier.startsWith('.')) continue; // an npm package or a node: module
    const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
    out.push({ target: resolved.split('/')[0]!, dynamic: match[2] !== undefined });
  }
  return out;
}

/** The imports that break the rules, as "file → room". */
export function violations(sources: Record<string, string>): string[] {
  const found: string[] = [];
  for (const [file, text] of Object.entries(sources)) {
    const room = file.split('/')[0]!;
    const allowed = MAY_IMPORT[room];
    if (!allowed) continue;
    for (const { target, dynamic } of importsOf(file, text)) {
      if (target === room || allowed.includes(target)) continue;
      if (dynamic && ON_DEMAND.some((door) => door.file === file && door.target === target)) continue;
      found.push(`${file} → ${target}/${dynamic ? ' (import())' : ''}`);
    }
  }
  return found;
}

function sources(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(path.join(ROOT, dir))) {
    const relative = `${dir}/${name}`;
    if (statSync(path.join(ROOT, relative)).isDirectory()) Object.assign(out, sources(relative));
    else if (name.endsWith('.ts')) out[relative] = readFileSync(path.join(ROOT, relative), 'utf8');
  }
  return out;
}

describe('one-way rooms', () => {
  it('no production file imports a room it may not', () => {
    const all = Object.assign({}, ...Object.keys(MAY_IMPORT).map(sources)) as Record<string, string>;
    assert.ok(Object.keys(all).length > 50, 'the scan found the sources');
    assert.deepEqual(violations(all), []);
  });

  it('the check catches a forbidden import (the controller reaching into broker/, or the broker into testing/)', () => {
    assert.deepEqual(
      violations({
        'catalog-controller/kube/x.ts': "import { withTimeout } from '../../broker/timeout.js';",
        'broker/http/y.ts': "import type { FaultCounter } from '../../testing/fault-counter.js';",
        'broker/jobs/z.ts': "const t = await import('../../testing/index.js');",
        'osb/w.ts': "export { createLogger } from '../runtime/logger.js';",
        'broker/ok.ts': "import { ConfigError } from '../runtime/config.js';\nimport pg from 'pg';",
      }),
      [
        'catalog-controller/kube/x.ts → broker/',
        'broker/http/y.ts → testing/',
        'broker/jobs/z.ts → testing/ (import())',
        'osb/w.ts → runtime/',
      ],
    );
  });

  it('the broker reaches testing/ only through TEST_OFFERING', () => {
    const depot = readFileSync(path.join(ROOT, 'broker/depot.ts'), 'utf8');
    assert.match(depot, /config\.testOffering \? \(await import\('\.\.\/testing\/index\.js'\)\)/);
  });
});
