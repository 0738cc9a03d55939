import type { JsonObject } from '../../../osb/index.js';
import { PermanentOfferingError } from '../offering.js';

/**
 * Character sets an instance's database may default to (`parameters.character_set`): those
 * MariaDB 10.6+ and MySQL 8.0 both have, for the common languages. The plan schemas list the
 * same; the offering checks again, whatever the catalog says, since the name goes into SQL.
 */
export const CHARACTER_SETS = [
  'utf8mb4',
  'utf8mb3',
  'utf16',
  'utf32',
  'ascii',
  'binary',
  'latin1',
  'latin2',
  'cp1250',
  'cp1251',
  'cp1256',
  'greek',
  'hebrew',
  'sjis',
  'ujis',
  'euckr',
  'gbk',
  'gb2312',
  'big5',
] as const;

/** Without parameters an instance's database is utf8mb4, in the server's default collation for it. */
export const DEFAULT_CHARACTER_SET = 'utf8mb4';

/**
 * A collation of one of CHARACTER_SETS: its name starts with the character set's
 * (`utf8mb4_unicode_ci`, `latin1_swedish_ci`), or is `binary`. Whether the server has it, and
 * whether it belongs to `character_set`, only the server knows (information_schema.COLLATIONS).
 */
export const COLLATION_PATTERN = `^((${CHARACTER_SETS.join('|')})_[a-z0-9_]{1,50}|binary)$`;

/** What an instance asks of its database's defaults, checked against the allow-list. */
export interface DatabaseCharset {
  characterSet?: string;
  collation?: string;
}

/** `parameters.character_set` and `parameters.collation`, refused (naming the field) unless allowed. */
export function requestedCharset(parameters: JsonObject): DatabaseCharset {
  const { character_set: characterSet, collation } = parameters;
  if (characterSet !== undefined && !(CHARACTER_SETS as readonly unknown[]).includes(characterSet)) {
    throw new PermanentOfferingError(
      `parameters.character_set must be one of ${CHARACTER_SETS.join(', ')}, got ${JSON.stringify(characterSet)}`,
    );
  }
  if (collation !== undefined && (typeof collation !== 'string' || !new RegExp(COLLATION_PATTERN).test(collation))) {
    throw new PermanentOfferingError(
      `parameters.collation must be a collation of an allowed character set, got ${JSON.stringify(collation)}`,
    );
  }
  return {
    ...(typeof characterSet === 'string' ? { characterSet } : {}),
    ...(typeof collation === 'string' ? { collation } : {}),
  };
}
