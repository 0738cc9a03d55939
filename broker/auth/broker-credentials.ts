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

  /** Whether an Authorization header carries one of the pairs (spec: HTTP Basic authentication). */
  async accepts(authorization: string | undefined): Promise<boolean> {
    const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
    if (!match) return false;
    const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    const [username, password] = [decoded.slice(0, colon), decoded.slice(colon + 1)];
    if (!this.hashed) return compareAll(this.entries, username, password);

    const key = sha256(match[1]!).toString('base64');
    if (this.accepted.has(key)) return true;
    if (this.refused.has(key)) return false;
    const underWay = this.pending.get(key);
    if (underWay) return underWay;
    const generation = this.generation;
    const verdict = compareAll(this.entries, username, password).finally(() => {
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

/**
 * Every entry is checked, username and password alike, and the results combined without a
 * short cut: an unknown username costs what a known one does.
 */
async function compareAll(entries: Entry[], username: string, password: string): Promise<boolean> {
  const usernameDigest = sha256(username);
  const passwordDigest = sha256(password);
  const results = await Promise.all(
    entries.map(async (entry) => {
      const userMatches = timingSafeEqual(usernameDigest, entry.usernameDigest);
      const passwordMatches =
        entry.kind === 'plain'
          ? timingSafeEqual(passwordDigest, entry.passwordDigest)
          : timingSafeEqual(await scryptAsync(password, entry.salt, entry.hash.length, entry.options), entry.hash);
      return userMatches && passwordMatches;
    }),
  );
  return results.includes(true);
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
