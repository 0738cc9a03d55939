import { access } from 'node:fs/promises';
import type pg from 'pg';
import { loadConfig, serverAddress, type BrokerConfig } from '../config.js';
import { encryptionKeys } from '../crypto/encryption-keys.js';
import { checkKeys, KeyRegistryError } from '../crypto/key-registry.js';
import { StateCipher } from '../crypto/state-cipher.js';
import { readMigrations } from '../db/migrate.js';
import { createPool, databaseName, isDatabaseUnavailable } from '../db/pool.js';
import type { Env } from '../../runtime/config.js';
import { AdminError } from './errors.js';
import { appliedMigrations } from './queries.js';

/** The broker's state database, opened as the broker opens it, but never migrated. */
export interface AdminState {
  config: BrokerConfig;
  pool: pg.Pool;
  cipher: StateCipher;
  close(): Promise<void>;
}

/**
 * The configuration the broker reads (loadConfig), its keys and its state database; the schema
 * must be migrated already and the keys must open it (checkKeys), or an AdminError says why.
 */
export async function openAdminState(env: Env): Promise<AdminState> {
  const config = loadConfig(env);
  const cipher = new StateCipher(await adminKeys(config));
  const pool = createPool(config.databaseUrl, 2);
  pool.on('error', () => undefined); // an idle connection that breaks: the next query says so
  try {
    await requireMigrated(pool, config.databaseUrl);
    await checkKeys(pool, cipher).catch((error: unknown) => {
      throw error instanceof KeyRegistryError ? new AdminError(error.message) : error;
    });
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
  return { config, pool, cipher, close: () => pool.end() };
}

/**
 * ENCRYPTION_KEYS, or the key file the broker made; the CLI never makes one (a new key would
 * open nothing that is stored).
 */
async function adminKeys(config: BrokerConfig) {
  if (!config.encryptionKeys) {
    try {
      await access(config.encryptionKeyFile);
    } catch {
      throw new AdminError(
        `ENCRYPTION_KEYS is not set and the key file ${config.encryptionKeyFile} (ENCRYPTION_KEY_FILE) ` +
          'does not exist: give the keys the broker runs with',
      );
    }
  }
  return encryptionKeys(config, () => undefined);
}

/** Every migration of this checkout is applied; the CLI does not migrate (the broker does at start). */
async function requireMigrated(pool: pg.Pool, databaseUrl: string): Promise<void> {
  let applied: Set<number>;
  try {
    applied = new Set(await appliedMigrations(pool));
  } catch (error) {
    const code = (error as { code?: string }).code;
    const where = `${databaseName(databaseUrl)} at ${serverAddress(databaseUrl, 5432)} (DATABASE_URL)`;
    if (code === '3D000') throw new AdminError(`the state database ${where} does not exist: start Depot once`);
    if (isDatabaseUnavailable(error)) {
      throw new AdminError(`cannot reach the state database ${where}: ${(error as Error).message}`);
    }
    throw error;
  }
  const pending = (await readMigrations()).filter((m) => !applied.has(m.version)).map((m) => m.name);
  if (pending.length > 0) {
    throw new AdminError(
      `the state database ${databaseName(databaseUrl)} is not migrated (pending: ${pending.join(', ')}): ` +
        'start Depot (npm start) once to migrate it; depot does not migrate',
    );
  }
}
