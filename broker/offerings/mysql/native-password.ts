import { createHash } from 'node:crypto';

/**
 * The hash MariaDB stores for a `mysql_native_password` account: `*` and the upper-case hex of
 * SHA1(SHA1(password)), in the form `IDENTIFIED BY PASSWORD '…'` accepts as already hashed.
 * Sending it instead of the password keeps the password itself out of the server's statement
 * logs and process list.
 */
export function nativePasswordHash(password: string): string {
  const inner = createHash('sha1').update(password, 'utf8').digest();
  return `*${createHash('sha1').update(inner).digest('hex').toUpperCase()}`;
}
