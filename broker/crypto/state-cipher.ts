import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** A 256-bit AES key and the id that stored values name it by. */
export interface EncryptionKey {
  id: string;
  key: Buffer;
}

/** Key ids: short, and free of the envelope's separator. */
export const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * A sealed value: `depot1:<key id>:<base64 of iv (12 bytes), tag (16 bytes), ciphertext>`.
 * JSON never starts with `d`, so a legacy plaintext value (written before encryption at rest,
 * or by an older replica during an upgrade) is told apart without a marker of its own.
 */
const ENVELOPE = 'depot1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A stored value names a key this process was not given. */
export class UnknownKeyError extends Error {
  override name = 'UnknownKeyError';
  constructor(readonly keyId: string) {
    super(`a stored value is encrypted with key "${keyId}", which ENCRYPTION_KEYS does not hold`);
  }
}

/** A stored value did not decrypt: the wrong key under that id, or the value was altered or moved. */
export class UndecryptableValueError extends Error {
  override name = 'UndecryptableValueError';
  constructor(
    readonly keyId: string,
    where: string,
  ) {
    super(`the value of ${where} does not decrypt with key "${keyId}"`);
  }
}

/**
 * AES-256-GCM for Depot's state at rest. Every value is bound to its place (table, column and
 * row id) as additional data, so a sealed value copied to another row or column does not open.
 * The first key seals; every key opens.
 */
export class StateCipher {
  readonly primary: EncryptionKey;
  private readonly keys: ReadonlyMap<string, Buffer>;
  /** `depot1:<primary id>:`, the start of every value sealed now (key rotation looks for others). */
  readonly primaryPrefix: string;

  constructor(keys: readonly EncryptionKey[]) {
    if (keys.length === 0) throw new Error('StateCipher needs at least one key');
    this.primary = keys[0]!;
    this.keys = new Map(keys.map((k) => [k.id, k.key]));
    this.primaryPrefix = `${ENVELOPE}${this.primary.id}:`;
  }

  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  /** Seals a JSON value for `where` (e.g. `service_bindings.response:<id>`). */
  seal(value: unknown, where: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.primary.key, iv);
    cipher.setAAD(Buffer.from(where));
    const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    return `${this.primaryPrefix}${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')}`;
  }

  /** Opens what seal() made for the same `where`; a legacy plaintext JSON value is parsed as it is. */
  open<T>(stored: string, where: string): T {
    const keyId = StateCipher.keyIdOf(stored);
    if (keyId === undefined) return JSON.parse(stored) as T;
    const key = this.keys.get(keyId);
    if (!key) throw new UnknownKeyError(keyId);
    const raw = Buffer.from(stored.slice(ENVELOPE.length + keyId.length + 1), 'base64');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(where));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      const plain = Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
      return JSON.parse(plain.toString('utf8')) as T;
    } catch {
      throw new UndecryptableValueError(keyId, where);
    }
  }

  sealOrNull(value: unknown, where: string): string | null {
    return value === null || value === undefined ? null : this.seal(value, where);
  }

  openOrNull<T>(stored: string | null, where: string): T | null {
    return stored === null ? null : this.open<T>(stored, where);
  }

  /** The key id a stored value names; undefined for a legacy plaintext value. */
  static keyIdOf(stored: string): string | undefined {
    if (!stored.startsWith(ENVELOPE)) return undefined;
    const end = stored.indexOf(':', ENVELOPE.length);
    return end < 0 ? undefined : stored.slice(ENVELOPE.length, end);
  }
}
