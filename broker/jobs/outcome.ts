import type pg from 'pg';
import type { StateCipher } from '../crypto/state-cipher.js';
import type { BindResponse } from '../../osb/index.js';
import { deleteInstanceBindings, setBindingResponse, setBindingState } from '../db/bindings.js';
import { applyInstanceChanges, lockInstance, setInstanceState, type InstanceRow } from '../db/instances.js';
import { completeOperation, type OperationRequest, type OperationRow } from '../db/operations.js';
import { transaction } from '../db/pool.js';
import type { BrokerMetrics } from '../metrics.js';

export type Outcome =
  | { state: 'succeeded'; description: string; dashboardUrl?: string; bindResponse?: BindResponse }
  | { state: 'failed'; description: string };

/**
 * What an instance is once its provision or update has applied: what the operation recorded
 * (an update records the maintenance_info it moves to, null included for a plan without one),
 * else what the instance has.
 */
export function requestedState(instance: InstanceRow, request: OperationRequest) {
  return {
    plan_id: request.plan_id ?? instance.plan_id,
    parameters: request.parameters ?? instance.parameters,
    context: request.context ?? instance.context,
    maintenance_info: request.maintenance_info !== undefined ? request.maintenance_info : instance.maintenance_info,
  };
}

/** An error's message, or the thrown value itself when it is not an Error. */
export function errorReason(error: unknown): string {
  return (error as Error).message || String(error);
}

/** A failed outcome worded as last_operation shows it: "Provision failed: <reason>". */
export function failure(op: OperationRow, error: unknown): Outcome {
  const reason = errorReason(error);
  return { state: 'failed', description: `${op.type.charAt(0).toUpperCase()}${op.type.slice(1)} failed: ${reason}` };
}

/**
 * finishOperation, counted in the metrics when this call is the one that ended the operation
 * (the worker, its failure handler and the sweeper all end operations through here).
 */
export async function recordOutcome(
  pool: pg.Pool,
  cipher: StateCipher,
  metrics: BrokerMetrics,
  op: OperationRow,
  outcome: Outcome,
): Promise<boolean> {
  const ended = await finishOperation(pool, cipher, op, outcome);
  if (ended) {
    metrics.operationsFinished.inc({ type: op.type, state: outcome.state });
    metrics.operationDuration.observe(
      { type: op.type, state: outcome.state },
      (Date.now() - op.created_at.getTime()) / 1000,
    );
  }
  return ended;
}

/**
 * Records the end of an operation and what it leaves on its instance or binding, in one
 * transaction. Returns false when the operation had already ended (a second worker, or the
 * sweeper, got there first), in which case nothing changes.
 */
export async function finishOperation(
  pool: pg.Pool,
  cipher: StateCipher,
  op: OperationRow,
  outcome: Outcome,
): Promise<boolean> {
  return transaction(pool, async (client) => {
    const instance = await lockInstance(client, cipher, op.instance_id);
    if (!instance) return false;
    const failed = outcome.state === 'failed';
    const ended = await completeOperation(client, op.id, {
      state: outcome.state,
      description: outcome.description,
      // spec: instance_usable / update_repeatable only for a failed update or deprovision.
      ...(failed && op.type === 'update' ? { instance_usable: true, update_repeatable: true } : {}),
      ...(failed && op.type === 'deprovision'
        ? { instance_usable: op.request.previous_instance_state === 'provisioned' }
        : {}),
    });
    if (!ended) return false;

    const bindingId = op.binding_id ?? '';
    if (outcome.state === 'succeeded') {
      switch (op.type) {
        case 'provision':
        case 'update':
          await applyInstanceChanges(client, cipher, op.instance_id, {
            ...requestedState(instance, op.request),
            plan_settings: op.request.plan_settings ?? instance.plan_settings,
            dashboard_url: outcome.dashboardUrl ?? null,
          });
          break;
        case 'deprovision':
          await deleteInstanceBindings(client, op.instance_id);
          await setInstanceState(client, op.instance_id, 'deleted');
          break;
        case 'bind':
          await setBindingResponse(client, cipher, bindingId, outcome.bindResponse ?? {});
          break;
        case 'unbind':
          await setBindingState(client, bindingId, 'deleted');
          break;
      }
    } else {
      switch (op.type) {
        case 'provision':
          await setInstanceState(client, op.instance_id, 'create_failed');
          break;
        case 'update': // the instance keeps its plan and parameters (spec: 4xx/5xx apply nothing)
          break;
        case 'deprovision':
          await setInstanceState(client, op.instance_id, op.request.previous_instance_state ?? 'provisioned');
          break;
        case 'bind':
          await setBindingState(client, bindingId, 'create_failed');
          break;
        case 'unbind':
          await setBindingState(client, bindingId, op.request.previous_binding_state ?? 'bound');
          break;
      }
    }
    return true;
  });
}
