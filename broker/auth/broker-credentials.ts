import { createHash, scrypt, timingSafeEqual, type BinaryLike, type ScryptOptions } from 'node:crypto';
import { SCRYPT_MAX_MEMORY, type BrokerCredential } from './credentials-file.js';

/** Verdicts kept per kind (accepted, refused): a flood of wrong headers cannot push out the right ones. */
const CACHE_ENTRIES = 1024;

type Entry =
  | { usernameDigest: Buffer; kind: 'plain'; passwordDigest: Buffer }
  | { usernameDigest: Buffer; kind: 'scrypt'; options: ScryptOptions; salt: Buffer; hash: Buffer };

/**
 * The username/password pairs the OSB API accepts (HTTP Basic). Every entry is compared, in
 * constant time, whatever the username, so that the time taken does not tell which usernames
 * exist. scrypt entries cost tens of milliseconds each: the verdict on an Authorization header
 * is kept (under its SHA-256, a bounded number of them) until the entries are replaced.
 */
export class BrokerCredentials {
  private entries: Entry[] = [];
  private hashed = false;
  /** Bumped by replace(): a verdict reached on the old entries is not cached. */
  private generation = 0;
  private readonly accepted = new BoundedSet(CACHE_ENTRIES);
  private readonly refused = new BoundedSet(CACHE_ENTRIES);
  /** Verifications under way, so that a burst of one header pays scrypt once. */
  private readonly pending = new Map<string, Promise<boolean>>();

  constructor(credentials: BrokerCredential[]) {
    this.replace(credentials);
  }

  /** Swaps in new entries (BROKER_CREDENTIALS_FILE read again) and forgets every verdict. */
  replace(credentials: BrokerCredential[]): void {
    this.entries = credentials.map(toEntry);
    this.hashed = this.entries.some((e) => e.kind === 'scrypt');
    this.generation++;
    this.accepted.clear();
    this.refused.clear();
    this.pending.clear();
  }

  get size(): number {
    return this.entries.length;
  }

  /**
   * The verdict on an Authorization header when it needs no scrypt: every entry is plain, or
   * the header was verified before. Undefined when only accepts() can tell.
   */
  verdictNow(authorization: string | undefined): boolean | undefined {
    const pair = basicPair(authorization);
    if (!pair) return false;
    if (!this.hashed) return compareAll(this.entries, pair.username, pair.password) as boolean;
    const key = sha256(pair.token).toString('base64');
    if (this.accepted.has(key)) return true;
    if (this.refused.has(key)) return false;
    return undefined;
  }

  /** Whether an Authorization header carries one of the pairs (spec: HTTP Basic authentication). */
  async accepts(authorization: string | undefined): Promise<boolean> {
    const pair = basicPair(authorization);
    if (!pair) return false;
    const { username, password } = pair;
    if (!this.hashed) return compareAll(this.entries, username, password);

    const key = sha256(pair.token).toString('base64');
    if (this.accepted.has(key)) return true;
    if (this.refused.has(key)) return false;
    const underWay = this.pending.get(key);
    if (underWay) return underWay;
    const generation = this.generation;
    const verdict = Promise.resolve(compareAll(this.entries, username, password)).finally(() => {
      if (this.pending.get(key) === verdict) this.pending.delete(key);
    });
    this.pending.set(key, verdict);
    const accepted = await verdict;
    if (generation === this.generation) (accepted ? this.accepted : this.refused).add(key);
    return accepted;
  }
}

function toEntry(credential: BrokerCredential): Entry {
  const usernameDigest = sha256(credential.username);
  if (credential.kind === 'plain')
    return { usernameDigest, kind: 'plain', passwordDigest: sha256(credential.password) };
  const { N, r, p } = credential.params;
  return {
    usernameDigest,
    kind: 'scrypt',
    options: { N, r, p, maxmem: SCRYPT_MAX_MEMORY + 1024 * 1024 },
    salt: credential.salt,
    hash: credential.hash,
  };
}

interface BasicPair {
  token: string;
  username: string;
  password: string;
}

/** The base64 token of a Basic Authorization header and the pair it carries; undefined if malformed. */
function basicPair(authorization: string | undefined): BasicPair | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
  if (!match) return undefined;
  const token = match[1]!;
  const decoded = Buffer.from(token, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { token, username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Every entry is checked, username and password alike, and the results combined without a
 * short cut: an unknown username costs what a known one does. Synchronous when every entry
 * is plain (no scrypt to wait for).
 */
function compareAll(entries: Entry[], username: string, password: string): boolean | Promise<boolean> {
  const usernameDigest = sha256(username);
  const passwordDigest = sha256(password);
  let plainMatch = false;
  const hashed: Array<Promise<boolean>> = [];
  for (const entry of entries) {
    const userMatches = timingSafeEqual(usernameDigest, entry.usernameDigest);
    if (entry.kind === 'plain') {
      plainMatch = (timingSafeEqual(passwordDigest, entry.passwordDigest) && userMatches) || plainMatch;
    } else {
      hashed.push(
        scryptAsync(password, entry.salt, entry.hash.length, entry.options).then(
          (key) => timingSafeEqual(key, entry.hash) && userMatches,
        ),
      );
    }
  }
  if (hashed.length === 0) return plainMatch;
  return Promise.all(hashed).then((results) => plainMatch || results.includes(true));
}

function scryptAsync(password: BinaryLike, salt: Buffer, length: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, length, options, (error, key) => (error ? reject(error) : resolve(key))),
  );
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Insertion-ordered set that forgets its oldest member beyond `limit`. */
class BoundedSet {
  private readonly members = new Set<string>();
  constructor(private readonly limit: number) {}

  has(key: string): boolean {
    return this.members.has(key);
  }

  add(key: string): void {
    this.members.delete(key);
    this.members.add(key);
    if (this.members.size > this.limit) this.members.delete(this.members.values().next().value!);
  }

  clear(): void {
    this.members.clear();
  }
}
