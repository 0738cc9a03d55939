import type { OperationRequest } from '../db/operations.js';
import type { Command } from './command.js';
import { AdminError } from './errors.js';
import { json, record, redacted, table, timestamp } from './output.js';
import { operationDetails, operationsOfKind } from './queries.js';

/** The request as recorded, parameter values redacted unless --show-credentials. */
function shownRequest(request: OperationRequest, show: boolean): OperationRequest {
  return request.parameters ? { ...request, parameters: redacted(request.parameters, show)! } : request;
}

/** "attempt 2 of 5", as the worker (or an offering) wrote it into the description. */
function attemptOf(description: string | null): { number: number; of: number } | null {
  const match = /\battempt (\d+) of (\d+)\b/.exec(description ?? '');
  return match ? { number: Number(match[1]), of: Number(match[2]) } : null;
}

export const operationCommand: Command = {
  name: 'operation',
  synopsis: 'OPERATION',
  summary: 'Show an operation: its request (parameter values redacted), its attempts and its description.',
  flags: {},
  arguments: ['OPERATION'],
  async run(context, args) {
    const operationId = args.positionals[0]!;
    const { pool, cipher } = await context.state();
    const op = await operationDetails(pool, cipher, operationId);
    if (!op) throw new AdminError(`operation ${operationId} does not exist`);
    // Each DELETE a platform sends again, and each `depot retry`, is an operation of its own.
    const attempts = await operationsOfKind(pool, op.instance_id, op.binding_id, op.type);
    const shown = {
      id: op.id,
      type: op.type,
      state: op.state,
      instance_id: op.instance_id,
      binding_id: op.binding_id,
      description: op.description,
      attempt: attemptOf(op.description),
      instance_usable: op.instance_usable,
      update_repeatable: op.update_repeatable,
      request: shownRequest(op.request, context.showCredentials),
      originating_identity: op.originating_identity,
      request_identity: op.request_identity,
      created_at: op.created_at,
      updated_at: op.updated_at,
      finished_at: op.finished_at,
      attempts: attempts.map((a) => ({
        id: a.id,
        state: a.state,
        created_at: a.created_at,
        finished_at: a.finished_at,
        description: a.description,
      })),
    };
    if (context.json) return context.write(json(shown));
    const { attempts: _list, attempt, ...fields } = shown;
    context.write(
      record([
        ...Object.entries(fields),
        ['attempt', attempt ? `${attempt.number} of ${attempt.of} (as the description says)` : null],
      ]),
    );
    context.write(`\n${op.type} operations of this ${op.binding_id ? 'binding' : 'instance'}:\n`);
    context.write(
      table(
        shown.attempts,
        [
          { header: 'OPERATION', value: (a) => (a.id === op.id ? `${a.id} *` : a.id) },
          { header: 'STATE', value: (a) => a.state },
          { header: 'CREATED', value: (a) => timestamp(a.created_at) },
          { header: 'FINISHED', value: (a) => timestamp(a.finished_at) },
          { header: 'DESCRIPTION', value: (a) => a.description },
        ],
        'none',
      ),
    );
  },
};
