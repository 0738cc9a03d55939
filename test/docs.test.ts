/**
 * The documentation keeps up with the code: every environment variable the code reads is
 * documented, the README stays a front door into docs/, and no relative link is broken.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Where production code lives: its variables belong in docs/configuration.md. */
const PRODUCTION = ['broker', 'catalog-controller', 'osb', 'runtime', 'testing'];
/** Where test and benchmark code lives: its variables belong in some page of docs/. */
const TOOLING = ['test', 'bench'];
/** Set by the system, not by an operator. */
const SYSTEM = new Set(['PATH', 'USER', 'HOME']);

function sourceFiles(dir: string): string[] {
  const full = path.join(ROOT, dir);
  if (!existsSync(full)) return [];
  return readdirSync(full).flatMap((name) => {
    const file = path.join(full, name);
    if (statSync(file).isDirectory()) return sourceFiles(path.join(dir, name));
    return name.endsWith('.ts') ? [file] : [];
  });
}

/**
 * The variables read from the environment: properties of `env` or `process.env`, or names
 * passed to a parser with it.
 */
function variablesRead(dirs: string[]): Map<string, string> {
  const found = new Map<string, string>();
  const patterns = [
    /\b(?:process\.)?env\.([A-Z][A-Z0-9_]+)/g,
    /\benv\[['"]([A-Z][A-Z0-9_]+)['"]\]/g,
    /\(\s*env\s*,\s*'([A-Z][A-Z0-9_]+)'/g,
  ];
  for (const file of dirs.flatMap(sourceFiles)) {
    const text = readFileSync(file, 'utf8');
    for (const pattern of patterns) {
      for (const match of text.matchAll(pattern)) {
        if (!SYSTEM.has(match[1]!)) found.set(match[1]!, path.relative(ROOT, file));
      }
    }
  }
  return found;
}

const docs = () => readdirSync(path.join(ROOT, 'docs')).filter((name) => name.endsWith('.md'));
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

describe('documentation', () => {
  it('every variable the production code reads is in docs/configuration.md', () => {
    const configuration = read('docs/configuration.md');
    const read_ = variablesRead(PRODUCTION);
    assert.ok(read_.size >= 30, `found only ${read_.size} variables: the scan is broken`);
    const missing = [...read_].filter(([name]) => !configuration.includes(`\`${name}\``));
    assert.deepEqual(missing, [], 'documented as `NAME` in docs/configuration.md');
  });

  it('every variable the tests and benchmarks read is in a page of docs/', () => {
    const all = docs()
      .map((name) => read(`docs/${name}`))
      .join('\n');
    const missing = [...variablesRead(TOOLING)].filter(([name]) => !all.includes(`\`${name}\``));
    assert.deepEqual(missing, []);
  });

  it('the README is a front door of at most about 200 lines that links every page of docs/', () => {
    const readme = read('README.md');
    assert.ok(readme.split('\n').length <= 210, `${readme.split('\n').length} lines`);
    for (const command of ['npm ci && npm start', 'npm test']) assert.ok(readme.includes(command), command);
    for (const name of docs()) assert.ok(readme.includes(`(docs/${name}`), `README links docs/${name}`);
  });

  it('no relative link in the README or docs/ points at a missing file or heading', () => {
    const broken: string[] = [];
    for (const file of ['README.md', ...docs().map((name) => `docs/${name}`)]) {
      for (const [, target] of read(file).matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^(https?:|mailto:)/.test(target!)) continue;
        const [where, anchor] = target!.split('#') as [string, string | undefined];
        const resolved = where === '' ? file : path.join(path.dirname(file), where);
        if (!existsSync(path.join(ROOT, resolved))) {
          broken.push(`${file}: ${target}`);
        } else if (anchor && resolved.endsWith('.md') && !anchors(read(resolved)).has(anchor)) {
          broken.push(`${file}: ${target} (no such heading)`);
        }
      }
    }
    assert.deepEqual(broken, []);
  });
});

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const [, heading] of markdown.matchAll(/^#+ (.+)$/gm)) {
    out.add(
      heading!
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-'),
    );
  }
  return out;
}
