/**
 * TLS_CERT_FILE and TLS_KEY_FILE: PORT (the OSB API and the probes) serves HTTPS only, the
 * metrics listener stays plain HTTP, and SIGHUP swaps in a new certificate for new connections.
 * Self-signed certificates for IP:127.0.0.1 made with openssl; a real Depot in this process
 * (reload() called directly) and `npm run start:api`'s command as a child process (a real SIGHUP).
 */
import assert from 'node:assert/strict';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import request from 'supertest';
import { loadConfig } from '../broker/config.js';
import { API_VERSION, PASSWORD, USERNAME, startDepot, type TestDepot, refusesConfig } from './helpers.js';
import { startDepotProcess } from './depot-process.js';
import { certificateDir, selfSignedCertificate, type TestCertificate } from './tls-certificates.js';

let dir: string;
let first: TestCertificate;
let second: TestCertificate;

before(async () => {
  dir = await certificateDir();
  [first, second] = await Promise.all([selfSignedCertificate(dir, 'first'), selfSignedCertificate(dir, 'second')]);
});

/** The SHA-256 fingerprint of the certificate served on a new connection to 127.0.0.1:port. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const { fingerprint256 } = socket.getPeerCertificate();
      socket.end();
      resolve(fingerprint256);
    });
    socket.once('error', reject);
  });
}

/** A GET over https trusting only `ca`, on a new connection; the status, or the error's code. */
function httpsGet(url: string, ca: string | undefined, auth = false): Promise<number | string> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { 'X-Broker-API-Version': API_VERSION };
    if (auth) headers.authorization = `Basic ${Buffer.from(`${USERNAME}:${PASSWORD}`).toString('base64')}`;
    const req = https.get(url, { ...(ca ? { ca } : {}), agent: false, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** A plain-HTTP GET: the status, or the error's code when no HTTP answer comes. */
function httpGet(url: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe('TLS: configuration', () => {
  const refuses = refusesConfig;

  it('both or neither; a file unreadable, invalid or of another certificate: the variable named', async () => {
    refuses({ TLS_CERT_FILE: first.certFile }, /^TLS_KEY_FILE must be set when TLS_CERT_FILE is/);
    refuses({ TLS_KEY_FILE: first.keyFile }, /^TLS_CERT_FILE must be set when TLS_KEY_FILE is/);
    const missing = path.join(dir, 'missing.crt');
    refuses({ TLS_CERT_FILE: missing, TLS_KEY_FILE: first.keyFile }, /^TLS_CERT_FILE .*missing\.crt cannot be read/);
    refuses({ TLS_CERT_FILE: first.certFile, TLS_KEY_FILE: missing }, /^TLS_KEY_FILE .*missing\.crt cannot be read/);
    // A key where the certificate belongs, and the other way round.
    refuses(
      { TLS_CERT_FILE: first.keyFile, TLS_KEY_FILE: first.keyFile },
      /^TLS_CERT_FILE .* is not a PEM certificate/,
    );
    refuses({ TLS_CERT_FILE: first.certFile, TLS_KEY_FILE: first.certFile }, /^TLS_KEY_FILE .* is not an unencrypted/);
    refuses(
      { TLS_CERT_FILE: first.certFile, TLS_KEY_FILE: second.keyFile },
      /^TLS_KEY_FILE .*second\.key is not the key of the certificate in TLS_CERT_FILE .*first\.crt/,
    );
    const config = loadConfig({ TLS_CERT_FILE: first.certFile, TLS_KEY_FILE: first.keyFile });
    assert.equal(config.tls?.fingerprint256, first.fingerprint256);
    assert.equal(loadConfig({}).tls, undefined);
  });
});

describe('TLS: HTTPS only on PORT', () => {
  let depot: TestDepot;
  let certFile: string;
  let keyFile: string;
  let port: number;

  before(async () => {
    // Files of their own, overwritten below as an operator (or cert-manager) renews them.
    [certFile, keyFile] = [path.join(dir, 'served.crt'), path.join(dir, 'served.key')];
    await Promise.all([copyFile(first.certFile, certFile), copyFile(first.keyFile, keyFile)]);
    depot = await startDepot('tls', { role: 'api', env: { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile } });
    port = Number(new URL(depot.baseUrl).port);
  });
  after(async () => depot?.close());

  it('the OSB API and the probes answer over https; plain http to the same port gets no answer', async () => {
    assert.match(depot.baseUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(await httpsGet(`${depot.baseUrl}/v2/catalog`, first.pem, true), 200);
    assert.equal(await httpsGet(`${depot.baseUrl}/v2/catalog`, first.pem), 401);
    assert.equal(await httpsGet(`${depot.baseUrl}/healthz`, first.pem), 200);
    assert.equal(await httpsGet(`${depot.baseUrl}/readyz`, first.pem), 200);
    // Without the certificate as a trust anchor the client refuses it: it really is the one served.
    assert.equal(await httpsGet(`${depot.baseUrl}/healthz`, undefined), 'DEPTH_ZERO_SELF_SIGNED_CERT');
    assert.equal(await servedFingerprint(port), first.fingerprint256);
    const plain = await httpGet(`http://127.0.0.1:${port}/healthz`);
    assert.equal(typeof plain, 'string', `plain http got an HTTP answer: ${plain}`);
  });

  it('the metrics listener stays plain HTTP', async () => {
    assert.match(depot.metricsUrl, /^http:\/\//);
    const metrics = await request(depot.metricsUrl).get('/metrics').expect(200);
    assert.match(metrics.text, /depot_http_request_duration_seconds/);
  });

  it('reload(): new connections get the new certificate; a bad one keeps the one in use, logged', async () => {
    await Promise.all([copyFile(second.certFile, certFile), copyFile(second.keyFile, keyFile)]);
    assert.equal(await servedFingerprint(port), first.fingerprint256, 'nothing changes before the reload');
    assert.deepEqual(depot.depot.reload(), { reloaded: ['TLS_CERT_FILE'], failed: [] });
    assert.equal(await servedFingerprint(port), second.fingerprint256);
    assert.equal(await httpsGet(`${depot.baseUrl}/v2/catalog`, second.pem, true), 200);
    assert.notEqual(await httpsGet(`${depot.baseUrl}/v2/catalog`, first.pem, true), 200);

    // Half-way through a renewal: the new certificate is in place, its key is not yet.
    await copyFile(first.certFile, certFile);
    assert.deepEqual(depot.depot.reload(), { reloaded: [], failed: ['TLS_CERT_FILE'] });
    assert.equal(await servedFingerprint(port), second.fingerprint256);
    // And a file that is no PEM at all.
    await writeFile(certFile, 'not a certificate\n');
    assert.deepEqual(depot.depot.reload(), { reloaded: [], failed: ['TLS_CERT_FILE'] });
    assert.equal(await servedFingerprint(port), second.fingerprint256);
    assert.equal(await httpsGet(`${depot.baseUrl}/healthz`, second.pem), 200);

    const errors = depot.logs
      .map((line) => JSON.parse(line) as { level: number; msg: string; certFile?: string; reason?: string })
      .filter((line) => line.msg === 'TLS certificate not reloaded: the certificate in use stays');
    assert.equal(errors.length, 2);
    assert.ok(errors.every((e) => e.level === 50 && e.certFile === certFile));
    assert.match(errors[0]!.reason ?? '', /^TLS_KEY_FILE .* is not the key of the certificate/);
    assert.match(errors[1]!.reason ?? '', /^TLS_CERT_FILE .* is not a PEM certificate/);
    const key = await readFile(second.keyFile, 'utf8');
    assert.equal(depot.logs.join('\n').includes(key.split('\n')[1]!), false, 'the private key reached the log');
  });
});

describe('TLS: a real SIGHUP to `npm run start:api`', () => {
  it('swaps the served certificate without a restart', async () => {
    const [certFile, keyFile] = [path.join(dir, 'process.crt'), path.join(dir, 'process.key')];
    await Promise.all([copyFile(first.certFile, certFile), copyFile(first.keyFile, keyFile)]);
    const depot = await startDepotProcess('tls-sighup', {
      TLS_CERT_FILE: certFile,
      TLS_KEY_FILE: keyFile,
      BROKER_USERNAME: USERNAME,
      BROKER_PASSWORD: PASSWORD,
    });
    try {
      const [listening] = depot.logged('OSB API listening');
      assert.equal(listening?.scheme, 'https');
      assert.equal(listening?.fingerprint256, first.fingerprint256);
      assert.equal(await servedFingerprint(depot.port), first.fingerprint256);
      assert.equal(await httpsGet(`https://127.0.0.1:${depot.port}/v2/catalog`, first.pem, true), 200);

      await Promise.all([copyFile(second.certFile, certFile), copyFile(second.keyFile, keyFile)]);
      process.kill(depot.child.pid!, 'SIGHUP');
      for (const deadline = Date.now() + 15_000; (await servedFingerprint(depot.port)) !== second.fingerprint256;) {
        if (Date.now() > deadline) throw new Error(`still the first certificate:\n${depot.lines.join('\n')}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(await httpsGet(`https://127.0.0.1:${depot.port}/v2/catalog`, second.pem, true), 200);
      assert.equal(depot.logged('reloaded TLS_CERT_FILE and TLS_KEY_FILE')[0]?.fingerprint256, second.fingerprint256);
      assert.equal(depot.child.exitCode, null);
    } finally {
      await depot.stop();
    }
  });
});
