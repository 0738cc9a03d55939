import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);
const ITERATIONS = 4096; // PostgreSQL's default scram_iterations

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802, RFC 7677), in the
 * form `ALTER ROLE … PASSWORD` accepts as already encrypted. Sending it instead of the
 * password keeps the password itself out of the server's statement log.
 * The password must be ASCII (SASLprep leaves it unchanged): Depot generates base64url ones.
 */
export async function scramSha256Verifier(password: string): Promise<string> {
  const salt = randomBytes(16);
  const salted = await pbkdf2Async(password, salt, ITERATIONS, 32, 'sha256');
  const storedKey = createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return (
    `SCRAM-SHA-256$${ITERATIONS}:${salt.toString('base64')}` +
    `$${storedKey.toString('base64')}:${serverKey.toString('base64')}`
  );
}
