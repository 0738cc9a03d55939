import { ConfigError } from '../runtime/config.js';
import { loadConfig } from './config.js';
import { encryptionKeys } from './crypto/encryption-keys.js';
import { checkKeys, KeyRegistryError } from './crypto/key-registry.js';
import { rotateKeys } from './crypto/key-rotation.js';
import { StateCipher } from './crypto/state-cipher.js';
import { createPool } from './db/pool.js';

/**
 * `npm run rotate-keys`: seals every stored value with the first key of ENCRYPTION_KEYS, then
 * retires the keys no value names any more. Safe beside serving replicas and other runs; a run
 * that stops is taken up by the next one.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const cipher = new StateCipher(await encryptionKeys(config, (text) => process.stderr.write(text)));
  const pool = createPool(config.databaseUrl, 2);
  try {
    await checkKeys(pool, cipher);
    process.stdout.write(`rotate-keys: sealing every stored value with key "${cipher.primary.id}"\n`);
    const result = await rotateKeys(pool, cipher, {
      onProgress: ({ table, done, total }) =>
        process.stdout.write(`rotate-keys: ${table}: ${done}/${total} rows re-encrypted\n`),
    });
    if (result.remaining > 0) {
      process.stderr.write(
        `rotate-keys: ${result.remaining} rows still hold values under another key: a replica may still run with ` +
          `another first key. Give every replica ENCRYPTION_KEYS starting with "${cipher.primary.id}", ` +
          'then run rotate-keys again.\n',
      );
      process.exitCode = 1;
      return;
    }
    const retired = result.retired.length ? `; retired ${result.retired.map((id) => `"${id}"`).join(', ')}` : '';
    process.stdout.write(
      `rotate-keys: done, ${result.resealed} rows re-encrypted, every value is under "${cipher.primary.id}"` +
        `${retired}. Keys other than "${cipher.primary.id}" may now leave ENCRYPTION_KEYS.\n`,
    );
  } finally {
    await pool.end();
  }
}

main().catch((error: unknown) => {
  const known = error instanceof ConfigError || error instanceof KeyRegistryError;
  process.stderr.write(
    `rotate-keys: ${known ? (error as Error).message : ((error as Error).stack ?? String(error))}\n`,
  );
  process.exit(known ? 2 : 1);
});
