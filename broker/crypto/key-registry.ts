import { registeredKeys, registerKey } from '../db/encryption-keys.js';
import type { MigrationStep } from '../db/migrate.js';
import type { Queryable } from '../db/pool.js';
import { resealBatch } from '../db/reseal.js';
import { SEALED_COLUMNS, type SealedTable } from '../db/sealed-columns.js';
import type { StateCipher } from './state-cipher.js';

/** The keys given do not open this database's values; the message names the key ids. */
export class KeyRegistryError extends Error {
  override name = 'KeyRegistryError';
}

const CHECK_TEXT = 'depot: encryption key check';
const checkPlace = (id: string) => `encryption_keys.check_value:${id}`;

/**
 * Before anything is read or sealed: every key that may still seal a stored value is given,
 * each given key of a listed id is that very key, and the sealing key is listed.
 */
export async function checkKeys(db: Queryable, cipher: StateCipher): Promise<void> {
  const registered = await registeredKeys(db);
  const given = new Set(cipher.keyIds);
  const missing = registered.filter((k) => !k.retired && !given.has(k.id)).map((k) => `"${k.id}"`);
  if (missing.length > 0) {
    throw new KeyRegistryError(
      `this database holds values encrypted with key ${missing.join(', ')}, which ENCRYPTION_KEYS lacks. ` +
        'Add it after the key that encrypts, and keep it until `npm run rotate-keys` has re-encrypted everything.',
    );
  }
  for (const key of registered.filter((k) => given.has(k.id))) {
    try {
      cipher.open(key.check_value, checkPlace(key.id));
    } catch {
      throw new KeyRegistryError(
        `ENCRYPTION_KEYS: key "${key.id}" is not the key of that id that encrypted this database's values`,
      );
    }
  }
  await registerSealingKey(db, cipher);
}

function registerSealingKey(db: Queryable, cipher: StateCipher): Promise<void> {
  return registerKey(db, cipher.primary.id, cipher.seal(CHECK_TEXT, checkPlace(cipher.primary.id)));
}

/** Migration 004's step: the rows that exist, plaintext until now, are sealed with the first key. */
export function sealExistingRows(cipher: StateCipher): MigrationStep {
  return async (client) => {
    for (const table of Object.keys(SEALED_COLUMNS) as SealedTable[]) {
      for (let after: string | undefined = ''; after !== undefined;) {
        after = (await resealBatch(client, cipher, table, after, 1000, false)).lastId;
      }
    }
    await registerSealingKey(client, cipher);
  };
}
