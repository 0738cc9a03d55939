import type { JsonObject, LastOperationState, MaintenanceInfo } from '../../osb/index.js';
import type { OriginatingIdentity } from '../../osb/index.js';
import type { BindingState } from './bindings.js';
import { instanceValues, type InstanceState, type NewInstance } from './instances.js';
import type { StateCipher } from '../crypto/state-cipher.js';
import type { Queryable } from './pool.js';
import { place } from './sealed-columns.js';

export type OperationType = 'provision' | 'update' | 'deprovision' | 'bind' | 'unbind';

/** What the job needs to carry out an operation, recorded when the operation is accepted. */
export interface OperationRequest {
  plan_id?: string;
  parameters?: JsonObject;
  context?: JsonObject;
  maintenance_info?: MaintenanceInfo | null;
  /** Update: the offering settings the instance will have (the target plan's on an upgrade or plan change). */
  plan_settings?: JsonObject | null;
  /** Deprovision: the instance's state to return to if the operation fails. */
  previous_instance_state?: InstanceState;
  /** Unbind: the binding's state to return to if the operation fails. */
  previous_binding_state?: BindingState;
}

export interface OperationRow {
  id: string;
  instance_id: string;
  binding_id: string | null;
  type: OperationType;
  state: LastOperationState;
  description: string | null;
  request: OperationRequest;
  instance_usable: boolean | null;
  update_repeatable: boolean | null;
  request_identity: string | null;
  created_at: Date;
}

export interface NewOperation {
  id: string;
  instance_id: string;
  binding_id: string | null;
  type: OperationType;
  request: OperationRequest;
  originating_identity: OriginatingIdentity | null;
  request_identity: string | null;
}

const COLUMNS =
  'id, instance_id, binding_id, type, state, description, request, instance_usable, update_repeatable, ' +
  'request_identity, created_at';

/** A row as stored: the request sealed. */
type StoredOperation = Omit<OperationRow, 'request'> & { request: string };

const at = (column: string, id: string) => place('operations', column, id);

function opened(cipher: StateCipher, row: StoredOperation): OperationRow {
  return { ...row, request: cipher.open<OperationRequest>(row.request, at('request', row.id)) };
}

/** The sealed request and originating identity of a new operation. */
function sealedValues(cipher: StateCipher, op: NewOperation): [string, string | null] {
  return [
    cipher.seal(op.request, at('request', op.id)),
    cipher.sealOrNull(op.originating_identity, at('originating_identity', op.id)),
  ];
}

export async function insertOperation(db: Queryable, cipher: StateCipher, op: NewOperation): Promise<OperationRow> {
  const { rows } = await db.query<StoredOperation>({
    name: 'operations.insertOperation',
    text: `insert into operations (id, instance_id, binding_id, type, request, originating_identity, request_identity)
     values ($1, $2, $3, $4, $5, $6, $7) returning ${COLUMNS}`,
    values: [op.id, op.instance_id, op.binding_id, op.type, ...sealedValues(cipher, op), op.request_identity],
  });
  return { ...rows[0]!, request: op.request };
}

/**
 * Provision accept in one round trip: inserts the instance and its provision operation in a
 * single statement (atomic without BEGIN/COMMIT). Undefined when the instance id exists.
 */
export async function insertInstanceWithOperation(
  db: Queryable,
  cipher: StateCipher,
  instance: NewInstance,
  op: NewOperation,
): Promise<OperationRow | undefined> {
  const { rows } = await db.query<StoredOperation>({
    name: 'operations.insertInstanceWithOperation',
    text: `with instance as (
       insert into service_instances
         (id, service_id, plan_id, organization_guid, space_guid, context, parameters, maintenance_info,
          plan_settings, state)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'provisioning')
       on conflict (id) do nothing
       returning id
     )
     insert into operations (id, instance_id, binding_id, type, request, originating_identity, request_identity)
     select $10, id, null, 'provision', $11, $12, $13 from instance
     returning ${COLUMNS}`,
    values: [...instanceValues(cipher, instance), op.id, ...sealedValues(cipher, op), op.request_identity],
  });
  return rows[0] && { ...rows[0], request: op.request };
}

export async function getOperation(db: Queryable, cipher: StateCipher, id: string): Promise<OperationRow | undefined> {
  const { rows } = await db.query<StoredOperation>({
    name: 'operations.getOperation',
    text: `select ${COLUMNS} from operations where id = $1`,
    values: [id],
  });
  return rows[0] && opened(cipher, rows[0]);
}

/** Operations running on an instance or any of its bindings. */
export async function activeOperations(
  db: Queryable,
  cipher: StateCipher,
  instanceId: string,
): Promise<OperationRow[]> {
  const { rows } = await db.query<StoredOperation>(
    `select ${COLUMNS} from operations where instance_id = $1 and state = 'in progress'`,
    [instanceId],
  );
  return rows.map((row) => opened(cipher, row));
}

const LAST_OPERATION = 'state, description, instance_usable, update_repeatable';

export interface LastOperation {
  state: LastOperationState;
  description: string | null;
  instance_usable: boolean | null;
  update_repeatable: boolean | null;
}

/**
 * last_operation for an instance in one index scan: the operation named by `operation` when
 * it belongs to this instance, else the instance's latest (spec: `operation` is optional;
 * platforms send literals such as "provision" too).
 */
export async function instanceLastOperation(
  db: Queryable,
  instanceId: string,
  operationId: string | undefined,
): Promise<LastOperation | undefined> {
  const { rows } = await db.query<LastOperation>({
    name: 'operations.instanceLastOperation',
    text: `(select ${LAST_OPERATION}, 0 as rank from operations
        where id = $2 and instance_id = $1 and binding_id is null)
     union all
     (select ${LAST_OPERATION}, 1 from operations where instance_id = $1 and binding_id is null
       order by created_at desc limit 1)
     order by rank limit 1`,
    values: [instanceId, operationId ?? ''],
  });
  return rows[0];
}

/** last_operation for a binding, as for instances. */
export async function bindingLastOperation(
  db: Queryable,
  instanceId: string,
  bindingId: string,
  operationId: string | undefined,
): Promise<LastOperation | undefined> {
  const { rows } = await db.query<LastOperation>({
    name: 'operations.bindingLastOperation',
    text: `(select ${LAST_OPERATION}, 0 as rank from operations where id = $3 and binding_id = $2 and instance_id = $1)
     union all
     (select ${LAST_OPERATION}, 1 from operations where binding_id = $2 and instance_id = $1
       order by created_at desc limit 1)
     order by rank limit 1`,
    values: [instanceId, bindingId, operationId ?? ''],
  });
  return rows[0];
}

export interface Completion {
  state: 'succeeded' | 'failed';
  description: string;
  instance_usable?: boolean;
  update_repeatable?: boolean;
}

/** Ends an operation; returns false when it had already ended (another worker won). */
export async function completeOperation(db: Queryable, id: string, completion: Completion): Promise<boolean> {
  const { rowCount } = await db.query({
    name: 'operations.completeOperation',
    text: `update operations set state = $2, description = $3, instance_usable = $4, update_repeatable = $5,
       updated_at = now(), finished_at = now()
     where id = $1 and state = 'in progress'`,
    values: [
      id,
      completion.state,
      completion.description,
      completion.instance_usable ?? null,
      completion.update_repeatable ?? null,
    ],
  });
  return rowCount === 1;
}

/** Progress shown by last_operation while the operation runs; false once it has ended. */
export async function describeOperation(db: Queryable, id: string, description: string): Promise<boolean> {
  const { rowCount } = await db.query({
    name: 'operations.describeOperation',
    text: `update operations set description = $2, updated_at = now()
     where id = $1 and state = 'in progress'`,
    values: [id, description],
  });
  return rowCount === 1;
}

/** Operations in progress that nothing has touched for `idleSeconds` (their job may be lost). */
export async function idleOperations(
  db: Queryable,
  cipher: StateCipher,
  idleSeconds: number,
  limit = 500,
): Promise<OperationRow[]> {
  const { rows } = await db.query<StoredOperation>(
    `select ${COLUMNS} from operations
      where state = 'in progress' and updated_at < now() - make_interval(secs => $1)
      order by updated_at limit $2`,
    [idleSeconds, limit],
  );
  return rows.map((row) => opened(cipher, row));
}

/** Operations in progress for longer than `timeoutSeconds`. */
export async function overdueOperations(
  db: Queryable,
  cipher: StateCipher,
  timeoutSeconds: number,
  limit = 500,
): Promise<OperationRow[]> {
  const { rows } = await db.query<StoredOperation>(
    `select ${COLUMNS} from operations
      where state = 'in progress' and created_at < now() - make_interval(secs => $1)
      order by created_at limit $2`,
    [timeoutSeconds, limit],
  );
  return rows.map((row) => opened(cipher, row));
}

export interface InProgressCount {
  type: OperationType;
  count: number;
  /** Seconds since the oldest of them was accepted. */
  oldest_seconds: number;
}

/** How many operations of each type are in progress, and the age of the oldest (metrics; partial index). */
export async function operationsInProgress(db: Queryable): Promise<InProgressCount[]> {
  const { rows } = await db.query<InProgressCount>(
    `select type, count(*)::int as count, extract(epoch from now() - min(created_at))::float8 as oldest_seconds
       from operations where state = 'in progress' group by type`,
  );
  return rows;
}
