import { UsageError } from './errors.js';

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `30s`, `30m`, `1h`, `2d` in seconds; a UsageError naming the flag otherwise. */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d{1,9})([smhd])$/.exec(text.trim());
  if (!match || Number(match[1]) === 0) {
    throw new UsageError(`${flag} must be a duration such as 30m, 1h or 2d (got ${JSON.stringify(text)})`);
  }
  return Number(match[1]) * UNIT_SECONDS[match[2]!]!;
}
