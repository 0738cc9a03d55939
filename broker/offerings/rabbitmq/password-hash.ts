import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** The algorithm RabbitMQ's internal users default to (rabbit_password_hashing_sha256). */
export const HASHING_ALGORITHM = 'rabbit_password_hashing_sha256';

/**
 * A password as RabbitMQ stores it: base64(salt ‖ SHA-256(salt ‖ password)), with a 4-byte
 * random salt. Sent as `password_hash`, so that the clear password never travels to the server
 * (nor into an error report of a request).
 */
export function rabbitPasswordHash(password: string, salt: Buffer = randomBytes(4)): string {
  const digest = createHash('sha256').update(salt).update(password, 'utf8').digest();
  return Buffer.concat([salt, digest]).toString('base64');
}

/** Whether `stored` (as rabbitPasswordHash makes it) is the hash of `password`. */
export function hasPassword(stored: string, password: string): boolean {
  const bytes = Buffer.from(stored, 'base64');
  if (bytes.length !== 36) return false;
  return timingSafeEqual(Buffer.from(rabbitPasswordHash(password, bytes.subarray(0, 4)), 'base64'), bytes);
}
