/**
 * Self-signed certificates for the TLS tests, made with the machine's `openssl` (node:crypto
 * cannot make certificates; openssl comes with Debian's postgresql-common via ssl-cert).
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestCertificate {
  certFile: string;
  keyFile: string;
  /** The certificate, PEM (what a caBundle holds, base64-encoded). */
  pem: string;
  /** SHA-256 fingerprint as node prints it (AA:BB:…). */
  fingerprint256: string;
}

/** A new temporary directory for certificate files. */
export function certificateDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'depot-tls-'));
}

/**
 * A self-signed P-256 certificate for 127.0.0.1 and localhost (SAN), valid for a day, written to
 * `<dir>/<name>.crt` and `<dir>/<name>.key`.
 */
export async function selfSignedCertificate(dir: string, name: string): Promise<TestCertificate> {
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  try {
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=depot-test-${name}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ]);
  } catch (error) {
    throw new Error(`openssl could not make a test certificate (is it installed?): ${(error as Error).message}`, {
      cause: error,
    });
  }
  const pem = await readFile(certFile, 'utf8');
  return { certFile, keyFile, pem, fingerprint256: new X509Certificate(pem).fingerprint256 };
}
