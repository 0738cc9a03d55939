/**
 * BROKER_CREDENTIALS_FILE: several username/password pairs (plain or scrypt hashes) accepted at
 * once, read again on SIGHUP, so the broker password can be rotated without downtime. A real
 * Depot in this process (reload() called directly), and `npm run start:api`'s command as a
 * child process that gets a real SIGHUP.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { loadConfig } from '../broker/config.js';
import { API_VERSION, startDepot, type TestDepot, refusesConfig } from './helpers.js';
import { startDepotProcess } from './depot-process.js';

const ROOT = path.resolve(import.meta.dirname, '..');

/** `npm run -s hash-password -- <username>` with the password on standard input. */
async function hashPassword(username: string, password: string): Promise<string> {
  const child = spawn('npm', ['run', '-s', 'hash-password', '--', username], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(`${password}\n`);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, stderr);
  return stdout;
}

/** GET /v2/catalog as this user. */
const catalogAs = (base: string, username: string, password: string) =>
  request(base).get('/v2/catalog').auth(username, password).set('X-Broker-API-Version', API_VERSION);

/** 200 for an accepted pair; 401 with a WWW-Authenticate challenge and a JSON body otherwise. */
async function assertAccepted(base: string, username: string, password: string): Promise<void> {
  const res = await catalogAs(base, username, password);
  assert.equal(res.status, 200, `${username}:${password} should be accepted`);
}
async function assertRefused(base: string, username: string, password: string): Promise<void> {
  const res = await catalogAs(base, username, password);
  assert.equal(res.status, 401, `${username}:${password} should be refused`);
  assert.equal(res.headers['www-authenticate'], 'Basic realm="depot", charset="UTF-8"');
  assert.equal(typeof (res.body as { description?: unknown }).description, 'string');
}

let dir: string;
/** Writes a credentials file; returns its path. */
async function credentialsFile(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'depot-credentials-'));
});

describe('BROKER_CREDENTIALS_FILE: configuration', () => {
  const refuses = refusesConfig;

  it('a bad line: ConfigError naming BROKER_CREDENTIALS_FILE and the line number, never the password', async () => {
    const cases: Array<[string, RegExp]> = [
      ['# platform\nplatform:first-secret\njust-a-password-typo\n', /line 3: expected username:password/],
      ['platform:first-secret\n\n:orphan-secret\n', /line 3: the username is empty/],
      ['platform:\n', /line 1: the password is empty/],
      [' platform:padded-secret\n', /line 1: the username starts or ends with a space/],
      ['platform:scrypt:16384:8:1:c2FsdHNhbHQ=\n', /line 1: a scrypt entry is username:scrypt:N:r:p:salt:hash/],
      ['platform:scrypt:1000:8:1:c2FsdHNhbHQ=:aGFzaGhhc2hoYXNoaGFzaA==\n', /line 1: scrypt N must be a power of two/],
      ['platform:scrypt:16384:8:1:not base64!:aGFzaGhhc2hoYXNoaGFzaA==\n', /line 1: the scrypt salt/],
      ['platform:scrypt:1048576:8:1:c2FsdHNhbHQ=:aGFzaGhhc2hoYXNoaGFzaA==\n', /line 1: .*256 MiB/],
      ['# nothing but comments\n\n', /has no username:password line/],
    ];
    for (const [index, [text, message]] of cases.entries()) {
      const file = await credentialsFile(`bad-${index}`, text);
      refuses({ BROKER_CREDENTIALS_FILE: file }, new RegExp(`^BROKER_CREDENTIALS_FILE ${file}`));
      refuses({ BROKER_CREDENTIALS_FILE: file }, message);
      const error = (() => {
        try {
          loadConfig({ BROKER_CREDENTIALS_FILE: file });
        } catch (caught) {
          return caught as Error;
        }
      })();
      for (const secret of ['first-secret', 'orphan-secret', 'padded-secret', 'just-a-password-typo']) {
        assert.equal(error?.message.includes(secret), false, `the message shows "${secret}"`);
      }
    }
    refuses(
      { BROKER_CREDENTIALS_FILE: path.join(dir, 'missing') },
      /^BROKER_CREDENTIALS_FILE .*cannot be read \(ENOENT\)/,
    );
  });

  it('refuses BROKER_CREDENTIALS_FILE together with BROKER_USERNAME/BROKER_PASSWORD', async () => {
    const file = await credentialsFile('both', 'platform:secret\n');
    refuses(
      { BROKER_CREDENTIALS_FILE: file, BROKER_USERNAME: 'platform', BROKER_PASSWORD: 'secret' },
      /^BROKER_CREDENTIALS_FILE and BROKER_USERNAME\/BROKER_PASSWORD cannot both be set/,
    );
    const config = loadConfig({ BROKER_CREDENTIALS_FILE: file });
    assert.equal(config.generatedPassword, false, 'no password is generated when the file is set');
  });
});

describe('BROKER_CREDENTIALS_FILE: several pairs, reload', () => {
  let depot: TestDepot;
  let file: string;
  let hashed: string;

  before(async () => {
    hashed = await hashPassword('hashed-user', 'hashed-secret');
    file = await credentialsFile(
      'credentials',
      [
        '# Cloud Foundry and the catalog controller',
        'cf:cf-first',
        'cf:cf-second:with:colons and spaces',
        '',
        '   # an indented comment',
        'kube:kube-secret\r',
        hashed.trimEnd(),
      ].join('\n'),
    );
    depot = await startDepot('broker-credentials', { env: { BROKER_CREDENTIALS_FILE: file } });
  });
  after(async () => depot?.close());

  it('npm run hash-password prints a username:scrypt:N:r:p:salt:hash line, without the password', () => {
    assert.match(hashed, /^hashed-user:scrypt:16384:8:1:[A-Za-z0-9+/]+={0,2}:[A-Za-z0-9+/]+={0,2}\n$/);
    assert.equal(hashed.includes('hashed-secret'), false);
  });

  it('accepts every pair of the file, plain or scrypt, and several passwords of one username', async () => {
    await assertAccepted(depot.baseUrl, 'cf', 'cf-first');
    await assertAccepted(depot.baseUrl, 'cf', 'cf-second:with:colons and spaces');
    await assertAccepted(depot.baseUrl, 'kube', 'kube-secret');
    await assertAccepted(depot.baseUrl, 'hashed-user', 'hashed-secret');
    // Again: the verdict on this header is cached now, and still the same.
    await assertAccepted(depot.baseUrl, 'hashed-user', 'hashed-secret');
  });

  it('refuses with 401 and WWW-Authenticate: wrong passwords, crossed pairs, unknown users, no header', async () => {
    await assertRefused(depot.baseUrl, 'cf', 'kube-secret');
    await assertRefused(depot.baseUrl, 'kube', 'cf-first');
    await assertRefused(depot.baseUrl, 'cf', 'cf-first ');
    await assertRefused(depot.baseUrl, 'hashed-user', 'hashed-secreT');
    await assertRefused(depot.baseUrl, 'hashed-user', 'hashed-secreT'); // a cached refusal
    await assertRefused(depot.baseUrl, 'nobody', 'cf-first');
    // The hash itself is no password.
    await assertRefused(depot.baseUrl, 'hashed-user', hashed.slice('hashed-user:'.length).trimEnd());
    const none = await request(depot.baseUrl).get('/v2/catalog').set('X-Broker-API-Version', API_VERSION);
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], 'Basic realm="depot", charset="UTF-8"');
    // The probes need no credentials.
    await request(depot.baseUrl).get('/healthz').expect(200);
  });

  it('reload(): the new file takes over at once, cached verdicts included; a bad file keeps the old one', async () => {
    await assertAccepted(depot.baseUrl, 'hashed-user', 'hashed-secret'); // cached as accepted
    await assertRefused(depot.baseUrl, 'kube', 'kube-next'); // not yet
    const next = await hashPassword('hashed-user', 'hashed-next');
    await writeFile(file, `cf:cf-second:with:colons and spaces\nkube:kube-next\n${next}`);
    assert.deepEqual(depot.depot.reload(), { reloaded: ['BROKER_CREDENTIALS_FILE'], failed: [] });
    await assertRefused(depot.baseUrl, 'cf', 'cf-first');
    await assertAccepted(depot.baseUrl, 'cf', 'cf-second:with:colons and spaces');
    await assertRefused(depot.baseUrl, 'kube', 'kube-secret');
    await assertAccepted(depot.baseUrl, 'kube', 'kube-next');
    await assertRefused(depot.baseUrl, 'hashed-user', 'hashed-secret');
    await assertAccepted(depot.baseUrl, 'hashed-user', 'hashed-next');

    // A half-written file: the pairs in use stay, and the log says which file and line.
    await writeFile(file, 'cf:cf-third\nkube-half-written-secret\n');
    assert.deepEqual(depot.depot.reload(), { reloaded: [], failed: ['BROKER_CREDENTIALS_FILE'] });
    await assertAccepted(depot.baseUrl, 'kube', 'kube-next');
    await assertAccepted(depot.baseUrl, 'hashed-user', 'hashed-next');
    await assertRefused(depot.baseUrl, 'cf', 'cf-third');
    const errors = depot.logs
      .map((line) => JSON.parse(line) as { level: number; msg: string; file?: string; line?: number })
      .filter((line) => line.msg.startsWith('BROKER_CREDENTIALS_FILE not reloaded'));
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.level, 50);
    assert.equal(errors[0]!.file, file);
    assert.equal(errors[0]!.line, 2);
    const everything = depot.logs.join('\n');
    for (const secret of ['cf-first', 'cf-third', 'kube-next', 'kube-half-written-secret', 'hashed-next']) {
      assert.equal(everything.includes(secret), false, `"${secret}" reached the log`);
    }
  });

  it('hash-password refuses an empty password or a username with ":"; without a username: the hash only', async () => {
    const script = path.join(ROOT, 'broker/auth/hash-password.ts');
    const attempt = (args: string[], input: string) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT });
        let [stdout, stderr] = ['', ''];
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        child.stdin.end(input);
        child.once('exit', (code) => resolve({ code, stdout, stderr }));
      });
    const empty = await attempt(['someone'], '\n');
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /the password is empty/);
    assert.equal(empty.stdout, '');
    const colon = await attempt(['some:one'], 'secret\n');
    assert.equal(colon.code, 1);
    assert.match(colon.stderr, /username must be/);
    const bare = await attempt([], 'secret');
    assert.equal(bare.code, 0, bare.stderr);
    assert.match(bare.stdout, /^scrypt:16384:8:1:[^:]+:[^:]+\n$/);
  });
});

describe('BROKER_CREDENTIALS_FILE: a real SIGHUP to `npm run start:api`', () => {
  it('rotates the password: the new one works and the removed one gets 401, with no restart', async () => {
    const file = await credentialsFile('sighup', 'platform:old-password\n');
    const depot = await startDepotProcess('broker-credentials-sighup', { BROKER_CREDENTIALS_FILE: file });
    try {
      const base = `http://127.0.0.1:${depot.port}`;
      await assertAccepted(base, 'platform', 'old-password');
      await assertRefused(base, 'platform', 'new-password');

      // Step 1 of a rotation: both passwords.
      await writeFile(file, 'platform:old-password\nplatform:new-password\n');
      process.kill(depot.child.pid!, 'SIGHUP');
      await pollStatus(base, 'platform', 'new-password', 200);
      await assertAccepted(base, 'platform', 'old-password');

      // Step 2, once the platform sends the new one: the old one goes.
      await writeFile(file, 'platform:new-password\n');
      process.kill(depot.child.pid!, 'SIGHUP');
      await pollStatus(base, 'platform', 'old-password', 401);
      await assertAccepted(base, 'platform', 'new-password');

      // A broken file on SIGHUP: no crash, the pairs in use stay, an error names the file and line.
      await writeFile(file, 'platform:newest-password\n:\n');
      process.kill(depot.child.pid!, 'SIGHUP');
      await poll(() => depot.logged('BROKER_CREDENTIALS_FILE not reloaded: the credentials in use stay').length > 0);
      const [error] = depot.logged('BROKER_CREDENTIALS_FILE not reloaded: the credentials in use stay');
      assert.equal(error?.file, file);
      assert.equal(error?.line, 2);
      assert.equal(depot.child.exitCode, null, 'still running');
      await assertAccepted(base, 'platform', 'new-password');
      await assertRefused(base, 'platform', 'newest-password');
      assert.equal(depot.logged('reloaded BROKER_CREDENTIALS_FILE').length, 2);
      for (const secret of ['old-password', 'new-password', 'newest-password']) {
        assert.equal(depot.lines.join('\n').includes(secret), false, `"${secret}" reached the log`);
      }
    } finally {
      await depot.stop();
    }
  });
});

/** Polls until `check` holds (at most 15 s). */
async function poll(check: () => boolean | Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 15_000; !(await check());) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Polls until this pair gets `status` from GET /v2/catalog. */
async function pollStatus(base: string, username: string, password: string, status: number): Promise<void> {
  await poll(async () => (await catalogAs(base, username, password)).status === status);
}
