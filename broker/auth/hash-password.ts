/**
 * `npm run -s hash-password [-- username]`: reads a password from standard input (never from the
 * command line, where `ps` and shell history would see it) and prints a BROKER_CREDENTIALS_FILE
 * entry for it: `username:scrypt:N:r:p:salt:hash`, or without a username only what follows
 * `username:`. One trailing newline of the input is dropped; on a terminal the password is asked
 * for without echo.
 */
import { randomBytes, scryptSync } from 'node:crypto';
import { DEFAULT_SCRYPT, HASH_BYTES, SALT_BYTES, scryptEntry } from './credentials-file.js';

async function readPassword(): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks)
      .toString('utf8')
      .replace(/\r?\n$/, '');
  }
  process.stderr.write('Password: ');
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  let typed = '';
  try {
    for await (const chunk of stdin) {
      for (const char of chunk as string) {
        if (char === '\u0003') throw new Error('interrupted');
        if (char === '\r' || char === '\n' || char === '\u0004') return typed;
        typed = char === '\u007f' || char === '\b' ? typed.slice(0, -1) : typed + char;
      }
    }
    return typed;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

async function main(): Promise<void> {
  const username = process.argv[2];
  // The file's rules (broker/auth/credentials-file.ts), so the line printed is one it accepts.
  if (
    username !== undefined &&
    (username === '' || /[:\u0000-\u001f\u007f]/.test(username) || username.trim() !== username)
  ) {
    throw new Error('the username must be non-empty, without ":", control characters or surrounding spaces');
  }
  const password = await readPassword();
  if (password === '') throw new Error('the password is empty');
  if (/[\u0000-\u001f\u007f]/.test(password)) throw new Error('the password has a control character');
  const salt = randomBytes(SALT_BYTES);
  const hash = scryptSync(password, salt, HASH_BYTES, DEFAULT_SCRYPT);
  const entry = scryptEntry(DEFAULT_SCRYPT, salt, hash);
  const line = username === undefined ? entry : `${username}:${entry}`;
  process.stdout.write(`${line}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`hash-password: ${(error as Error).message}\n`);
  process.exit(1);
});
