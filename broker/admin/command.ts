import type { Env } from '../../runtime/config.js';
import type { AdminOfferings } from './admin-offerings.js';
import type { AdminState } from './admin-state.js';
import type { CatalogNames } from './catalog-names.js';

/** What a command works with; the state database is opened on first use. */
export interface CommandContext {
  env: Env;
  /** --json: JSON instead of a table. */
  json: boolean;
  /** --show-credentials: credentials and parameter values are printed. */
  showCredentials: boolean;
  /** Standard output. */
  write(text: string): void;
  /** Standard error: what the operator should know that is not the answer. */
  note(text: string): void;
  state(): Promise<AdminState>;
  catalog(): Promise<CatalogNames>;
  /** The catalog's offerings, built as the broker builds them (for commands that ask their servers). */
  offerings(): Promise<AdminOfferings>;
}

/** The flags a command takes besides the global ones: each takes a value, or is a switch. */
export type Flags = Readonly<Record<string, 'value' | 'switch'>>;

export interface ParsedArgs {
  flags: Readonly<Record<string, string | boolean | undefined>>;
  positionals: readonly string[];
}

/** One `depot` command: its line in `depot help`, its flags and arguments, and what it does. */
export interface Command {
  name: string;
  /** The arguments and flags, as `depot help` shows them after the name. */
  synopsis: string;
  summary: string;
  flags: Flags;
  /** The names of the positional arguments it requires, in order. */
  arguments: readonly string[];
  run(context: CommandContext, args: ParsedArgs): Promise<void>;
}

/** A flag's value as a string (parseArgs gives strings to `value` flags). */
export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const value = args.flags[name];
  return typeof value === 'string' ? value : undefined;
}
