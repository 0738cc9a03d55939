import { parseArgs } from 'node:util';
import { BrokerError } from '../errors.js';
import { ConfigError, type Env } from '../../runtime/config.js';
import { openAdminOfferings, type AdminOfferings } from './admin-offerings.js';
import { openAdminState, type AdminState } from './admin-state.js';
import { CatalogNames } from './catalog-names.js';
import type { Command, CommandContext } from './command.js';
import { COMMANDS } from './commands.js';
import { AdminError, UsageError } from './errors.js';

/** Flags every command takes. */
const GLOBAL_FLAGS = {
  json: { type: 'boolean' },
  'show-credentials': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface CliIo {
  env: Env;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

function synopsis(command: Command): string {
  return `depot ${command.name}${command.synopsis ? ` ${command.synopsis}` : ''}`;
}

/** `depot help`: the commands that exist and the global flags. */
export function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: depot COMMAND [ARGUMENTS] [--json] [--show-credentials]',
    '',
    "Depot's admin CLI: reads the broker's state database with the broker's configuration",
    '(DATABASE_URL, ENCRYPTION_KEYS or ENCRYPTION_KEY_FILE, CATALOG_FILE; REDIS_URL for retry;',
    "the offerings' …_SERVICE_URL for drift and orphans).",
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    `  ${'help'.padEnd(width)}  This text; \`depot COMMAND --help\` shows a command's arguments.`,
    '',
    'Flags:',
    '  --json              JSON (arrays of objects) instead of a table',
    '  --show-credentials  print credentials and parameter values (redacted otherwise)',
    '',
  ].join('\n');
}

function commandUsage(command: Command): string {
  return `Usage: ${synopsis(command)} [--json] [--show-credentials]\n\n${command.summary}\n`;
}

/** Runs one command line; the exit code: 0 done, 1 it could not be done, 2 a wrong command line. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    io.stdout(usage());
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.stderr(`depot: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  let state: Promise<AdminState> | undefined;
  let catalog: Promise<CatalogNames> | undefined;
  let offerings: Promise<AdminOfferings> | undefined;
  try {
    const parsed = parse(command, rest);
    if (parsed.flags.help === true) {
      io.stdout(commandUsage(command));
      return 0;
    }
    const context: CommandContext = {
      env: io.env,
      json: parsed.flags.json === true,
      showCredentials: parsed.flags['show-credentials'] === true,
      write: io.stdout,
      note: io.stderr,
      state: () => (state ??= openAdminState(io.env)),
      catalog: async () => (catalog ??= context.state().then(({ config }) => CatalogNames.load(config))),
      offerings: async () => (offerings ??= context.state().then(({ config }) => openAdminOfferings(config))),
    };
    await command.run(context, parsed);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`depot ${command.name}: ${error.message}\n\n${commandUsage(command)}`);
      return 2;
    }
    if (error instanceof AdminError || error instanceof ConfigError || error instanceof BrokerError) {
      io.stderr(`depot ${command.name}: ${error.message}\n`);
      return 1;
    }
    io.stderr(`depot ${command.name}: ${(error as Error).message ?? String(error)}\n`);
    return 1;
  } finally {
    await (await offerings?.catch(() => undefined))?.close();
    const opened = await state?.catch(() => undefined);
    await opened?.close().catch(() => undefined);
  }
}

function parse(command: Command, args: string[]) {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { ...GLOBAL_FLAGS };
  for (const [flag, kind] of Object.entries(command.flags)) {
    options[flag] = { type: kind === 'value' ? 'string' : 'boolean' };
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    // ERR_PARSE_ARGS_UNKNOWN_OPTION, ERR_PARSE_ARGS_INVALID_OPTION_VALUE: the message names the flag.
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help !== true) {
    if (positionals.length < command.arguments.length) {
      throw new UsageError(`${command.arguments.slice(positionals.length).join(' ')} is missing`);
    }
    if (positionals.length > command.arguments.length) {
      throw new UsageError(`unexpected argument ${JSON.stringify(positionals[command.arguments.length])}`);
    }
  }
  return { flags: values, positionals };
}
