import { bindingsCommand } from './bindings-command.js';
import type { Command } from './command.js';
import { driftCommand } from './drift-command.js';
import { instancesCommand } from './instances-command.js';
import { operationCommand } from './operation-command.js';
import { operationsCommand } from './operations-command.js';
import { orphansCommand } from './orphans-command.js';
import { retryCommand } from './retry-command.js';

/** The `depot` commands, in the order `depot help` lists them. A command is one entry here. */
export const COMMANDS: readonly Command[] = [
  instancesCommand,
  bindingsCommand,
  operationsCommand,
  operationCommand,
  retryCommand,
  driftCommand,
  orphansCommand,
];
