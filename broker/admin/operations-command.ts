import type { Command } from './command.js';
import { stringFlag } from './command.js';
import { parseDuration } from './duration.js';
import { json, table, timestamp } from './output.js';
import { listOperations, type OperationFilter } from './queries.js';

export const operationsCommand: Command = {
  name: 'operations',
  synopsis: '[--failed] [--since DURATION]',
  summary: 'List operations, newest first; --since 30m, 1h or 2d keeps the recent ones.',
  flags: { failed: 'switch', since: 'value' },
  arguments: [],
  async run(context, args) {
    const since = stringFlag(args, 'since');
    const filter: OperationFilter = { failedOnly: args.flags.failed === true };
    if (since !== undefined) filter.sinceSeconds = parseDuration(since, '--since');
    const { pool } = await context.state();
    const operations = await listOperations(pool, filter);
    if (context.json) return context.write(json(operations));
    context.write(
      table(
        operations,
        [
          { header: 'OPERATION', value: (o) => o.id },
          { header: 'TYPE', value: (o) => o.type },
          { header: 'STATE', value: (o) => o.state },
          { header: 'INSTANCE', value: (o) => o.instance_id },
          { header: 'BINDING', value: (o) => o.binding_id },
          { header: 'CREATED', value: (o) => timestamp(o.created_at) },
          { header: 'DESCRIPTION', value: (o) => o.description },
        ],
        'No operations match.',
      ),
    );
  },
};
