import { bindingsCommand } from './bindings-command.js';
import type { Command } from './command.js';
import { instancesCommand } from './instances-command.js';
import { operationCommand } from './operation-command.js';
import { operationsCommand } from './operations-command.js';
import { retryCommand } from './retry-command.js';

/**
 * The `depot` commands, in the order `depot help` lists them. A command is one entry here.
 * `drift` (run a drift check now) and `orphans` (server objects with Depot's names that no live
 * instance or binding owns) join this table with the drift repair and the orphan finder they run.
 */
export const COMMANDS: readonly Command[] = [
  instancesCommand,
  bindingsCommand,
  operationsCommand,
  operationCommand,
  retryCommand,
];
