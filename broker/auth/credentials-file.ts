import { readFileSync } from 'node:fs';
import { ConfigError } from '../../runtime/config.js';

/** scrypt's cost parameters (RFC 7914): N (a power of two), r and p. */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** One username and password the platform may send: the password as such, or its scrypt hash. */
export type BrokerCredential =
  | { username: string; kind: 'plain'; password: string }
  | { username: string; kind: 'scrypt'; params: ScryptParams; salt: Buffer; hash: Buffer };

/** What `npm run hash-password` writes: N = 2^14, r = 8, p = 1 (16 MiB, some 50 ms), 16-byte salt. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 16384, r: 8, p: 1 };
export const SALT_BYTES = 16;
export const HASH_BYTES = 32;
/** scrypt needs about 128·N·r·p bytes; entries that would need more than this are refused. */
export const SCRYPT_MAX_MEMORY = 256 * 1024 * 1024;

/** A line of BROKER_CREDENTIALS_FILE that cannot be used; the message names the file and line, never a password. */
export class CredentialsFileError extends ConfigError {
  override name = 'CredentialsFileError';
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    problem: string,
  ) {
    super(`BROKER_CREDENTIALS_FILE ${file}${line === undefined ? '' : ` line ${line}`}: ${problem}`);
  }
}

/** Reads and parses BROKER_CREDENTIALS_FILE; throws CredentialsFileError. */
export function readCredentialsFile(file: string): BrokerCredential[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CredentialsFileError(file, undefined, `cannot be read (${(error as NodeJS.ErrnoException).code})`);
  }
  return parseCredentialsFile(text, file);
}

/**
 * One entry per line: `username:password` or `username:scrypt:N:r:p:<salt base64>:<hash base64>`;
 * blank lines and lines whose first non-blank character is `#` are skipped. Everything after the
 * first `:` is the password, spaces included. Several lines may share a username.
 */
export function parseCredentialsFile(text: string, file: string): BrokerCredential[] {
  const credentials: BrokerCredential[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (/^\s*(#.*)?$/.test(line)) return;
    credentials.push(parseEntry(line, (problem) => new CredentialsFileError(file, index + 1, problem)));
  });
  if (credentials.length === 0) throw new CredentialsFileError(file, undefined, 'has no username:password line');
  return credentials;
}

function parseEntry(line: string, fault: (problem: string) => CredentialsFileError): BrokerCredential {
  const colon = line.indexOf(':');
  if (colon < 0) throw fault('expected username:password (no ":" found)');
  const username = line.slice(0, colon);
  const secret = line.slice(colon + 1);
  if (username === '') throw fault('the username is empty');
  if (username.trim() !== username) throw fault('the username starts or ends with a space');
  if (/[\u0000-\u001f\u007f]/.test(line)) throw fault('has a control character');
  if (secret === '') throw fault('the password is empty');
  // A password that starts with "scrypt:" is a hash, so that a mistyped hash is an error, not a password.
  if (!secret.startsWith('scrypt:')) return { username, kind: 'plain', password: secret };
  const fields = secret.split(':');
  const [, n, r, p, salt, hash] = fields;
  if (fields.length !== 6)
    throw fault('a scrypt entry is username:scrypt:N:r:p:salt:hash (6 fields after the username)');
  const params = { N: Number(n), r: Number(r), p: Number(p) };
  if (!/^\d+$/.test(n!) || params.N < 2 || (params.N & (params.N - 1)) !== 0 || params.N > 2 ** 24) {
    throw fault('scrypt N must be a power of two from 2 to 2^24');
  }
  if (!/^\d+$/.test(r!) || params.r < 1 || params.r > 64) throw fault('scrypt r must be from 1 to 64');
  if (!/^\d+$/.test(p!) || params.p < 1 || params.p > 16) throw fault('scrypt p must be from 1 to 16');
  if (128 * params.N * params.r * params.p > SCRYPT_MAX_MEMORY) throw fault('scrypt N·r·p would need over 256 MiB');
  const saltBytes = base64(salt!);
  const hashBytes = base64(hash!);
  if (!saltBytes || saltBytes.length < 8) throw fault('the scrypt salt must be base64 of 8 bytes or more');
  if (!hashBytes || hashBytes.length < 16 || hashBytes.length > 64) {
    throw fault('the scrypt hash must be base64 of 16 to 64 bytes');
  }
  return { username, kind: 'scrypt', params, salt: saltBytes, hash: hashBytes };
}

/** Standard base64 (padding optional), or undefined. */
function base64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.replace(/=+$/, '').length % 4 === 1) return undefined;
  return Buffer.from(text, 'base64');
}

/** The part of a file line after `username:` for a scrypt hash of `password`. */
export function scryptEntry(params: ScryptParams, salt: Buffer, hash: Buffer): string {
  return `scrypt:${params.N}:${params.r}:${params.p}:${salt.toString('base64')}:${hash.toString('base64')}`;
}
