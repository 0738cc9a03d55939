import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, type Env } from '../../runtime/config.js';
import { KEY_ID_PATTERN, type EncryptionKey } from './state-cipher.js';

/**
 * `id:base64-32-bytes,id:base64-32-bytes,…` (ENCRYPTION_KEYS, or the key file's one line).
 * The message names the variable and the entry, never a key.
 */
export function parseEncryptionKeys(raw: string, name: string): EncryptionKey[] {
  const keys = raw
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry, index) => {
      const colon = entry.indexOf(':');
      const id = colon < 0 ? '' : entry.slice(0, colon);
      const where = `${name} entry ${index + 1}`;
      if (!KEY_ID_PATTERN.test(id)) {
        throw new ConfigError(`${where} must be id:base64-key, the id 1-64 letters, digits, ".", "_" or "-"`);
      }
      const encoded = entry.slice(colon + 1);
      const key = Buffer.from(encoded, 'base64');
      if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded) || key.length !== 32) {
        throw new ConfigError(`${where} (key "${id}") must be 32 bytes in base64 (\`openssl rand -base64 32\`)`);
      }
      return { id, key };
    });
  if (keys.length === 0) throw new ConfigError(`${name} holds no key: give id:base64-key[,id:base64-key…]`);
  const seen = new Set<string>();
  for (const { id } of keys) {
    if (seen.has(id)) throw new ConfigError(`${name} names key "${id}" twice`);
    seen.add(id);
  }
  return keys;
}

/** ENCRYPTION_KEY_FILE, by default in the user's state directory (never inside a checkout). */
export function defaultKeyFile(env: Env): string {
  const state = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(state, 'depot', 'encryption-keys');
}

export interface KeyFile {
  keys: EncryptionKey[];
  /** The file was written by this call. */
  created: boolean;
}

/**
 * The keys of a development machine's key file, which is made (mode 0600, in a directory of mode
 * 0700) when missing. Replicas starting together make it once: the file appears by link(), whole.
 */
export async function loadOrCreateKeyFile(file: string): Promise<KeyFile> {
  const existing = await readKeyFile(file);
  if (existing) return { keys: existing, created: false };
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const key = { id: `local-${randomBytes(4).toString('hex')}`, key: randomBytes(32) };
  const draft = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(draft, `${key.id}:${key.key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await chmod(draft, 0o600); // whatever the umask
    await link(draft, file);
    return { keys: [key], created: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return { keys: (await readKeyFile(file))!, created: false }; // another process made it first
  } finally {
    await unlink(draft).catch(() => undefined);
  }
}

async function readKeyFile(file: string): Promise<EncryptionKey[] | undefined> {
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`ENCRYPTION_KEY_FILE ${file} cannot be read: ${(error as Error).message}`);
  }
  if ((mode & 0o077) !== 0) {
    throw new ConfigError(
      `ENCRYPTION_KEY_FILE ${file} may be read by others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`,
    );
  }
  return parseEncryptionKeys(await readFile(file, 'utf8'), `ENCRYPTION_KEY_FILE ${file}`);
}

/**
 * The keys Depot runs with: ENCRYPTION_KEYS, or else the key file's, which is made on a first
 * start; using the file is said once, as a notice to the operator (never to the log).
 */
export async function encryptionKeys(
  config: { encryptionKeys: EncryptionKey[] | undefined; encryptionKeyFile: string },
  notice: (text: string) => void,
): Promise<EncryptionKey[]> {
  if (config.encryptionKeys) return config.encryptionKeys;
  const { keys, created } = await loadOrCreateKeyFile(config.encryptionKeyFile);
  notice(
    `\nDepot encrypts its state with the key in ${config.encryptionKeyFile}` +
      `${created ? ' (created now, mode 0600)' : ''}, because ENCRYPTION_KEYS is not set.\n` +
      '  In production, pass ENCRYPTION_KEYS (for example from a Kubernetes Secret); see docs/configuration.md.\n\n',
  );
  return keys;
}
