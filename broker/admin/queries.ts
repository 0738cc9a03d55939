/**
 * The admin CLI's reads of the state database, one function per query (as broker/db/): lists
 * across instances, bindings and operations that the broker itself never needs.
 */
import type {
  BindResource,
  BindResponse,
  JsonObject,
  LastOperationState,
  OriginatingIdentity,
} from '../../osb/index.js';
import type { StateCipher } from '../crypto/state-cipher.js';
import type { BindingState } from '../db/bindings.js';
import type { InstanceState } from '../db/instances.js';
import type { OperationRequest, OperationType } from '../db/operations.js';
import type { Queryable } from '../db/pool.js';
import { place } from '../db/sealed-columns.js';

/** The migrations recorded as applied; none when the table does not exist yet. */
export async function appliedMigrations(db: Queryable): Promise<number[]> {
  try {
    const { rows } = await db.query<{ version: number }>('select version from depot_migrations');
    return rows.map((r) => r.version);
  } catch (error) {
    if ((error as { code?: string }).code === '42P01') return []; // undefined_table
    throw error;
  }
}

export interface ListedInstance {
  id: string;
  service_id: string;
  plan_id: string;
  organization_guid: string | null;
  space_guid: string | null;
  context: JsonObject;
  parameters: JsonObject;
  dashboard_url: string | null;
  state: InstanceState;
  created_at: Date;
  updated_at: Date;
}

export interface InstanceFilter {
  organizationGuid?: string;
  spaceGuid?: string;
  /** Any of these states; empty: every state but `deleted`. */
  states: InstanceState[];
  serviceIds?: string[];
  planIds?: string[];
}

type Stored<T, K extends keyof T> = Omit<T, K> & { [P in K]: string };

/** Instances by the plain columns (org, space, state, service, plan), oldest first, contexts opened. */
export async function listInstances(
  db: Queryable,
  cipher: StateCipher,
  filter: InstanceFilter,
): Promise<ListedInstance[]> {
  const { rows } = await db.query<Stored<ListedInstance, 'context' | 'parameters'>>(
    `select id, service_id, plan_id, organization_guid, space_guid, context, parameters, dashboard_url, state,
            created_at, updated_at
       from service_instances
      where ($1::text is null or organization_guid = $1)
        and ($2::text is null or space_guid = $2)
        and (case when cardinality($3::text[]) = 0 then state <> 'deleted' else state = any($3) end)
        and ($4::text[] is null or service_id = any($4))
        and ($5::text[] is null or plan_id = any($5))
      order by created_at, id`,
    [
      filter.organizationGuid ?? null,
      filter.spaceGuid ?? null,
      filter.states,
      filter.serviceIds ?? null,
      filter.planIds ?? null,
    ],
  );
  return rows.map((row) => ({
    ...row,
    context: cipher.open<JsonObject>(row.context, place('service_instances', 'context', row.id)),
    parameters: cipher.open<JsonObject>(row.parameters, place('service_instances', 'parameters', row.id)),
  }));
}

export interface ListedBinding {
  id: string;
  instance_id: string;
  app_guid: string | null;
  bind_resource: BindResource | null;
  parameters: JsonObject;
  predecessor_binding_id: string | null;
  /** The bind response: holds credentials. */
  response: BindResponse | null;
  state: BindingState;
  created_at: Date;
  updated_at: Date;
}

type StoredBindingColumns = { bind_resource: string | null; parameters: string; response: string | null };

/** An instance's bindings, every state, oldest first, opened. */
export async function listBindings(db: Queryable, cipher: StateCipher, instanceId: string): Promise<ListedBinding[]> {
  const { rows } = await db.query<Omit<ListedBinding, keyof StoredBindingColumns> & StoredBindingColumns>(
    `select id, instance_id, app_guid, bind_resource, parameters, predecessor_binding_id, response, state,
            created_at, updated_at
       from service_bindings where instance_id = $1 order by created_at, id`,
    [instanceId],
  );
  const at = (column: string, id: string) => place('service_bindings', column, id);
  return rows.map((row) => ({
    ...row,
    bind_resource: cipher.openOrNull<BindResource>(row.bind_resource, at('bind_resource', row.id)),
    parameters: cipher.open<JsonObject>(row.parameters, at('parameters', row.id)),
    response: cipher.openOrNull<BindResponse>(row.response, at('response', row.id)),
  }));
}

export interface ListedOperation {
  id: string;
  instance_id: string;
  binding_id: string | null;
  type: OperationType;
  state: LastOperationState;
  description: string | null;
  created_at: Date;
  finished_at: Date | null;
}

export interface OperationFilter {
  failedOnly: boolean;
  /** Created within this many seconds. */
  sinceSeconds?: number;
}

/** Operations, newest first (their requests stay sealed: the list does not show them). */
export async function listOperations(db: Queryable, filter: OperationFilter): Promise<ListedOperation[]> {
  const { rows } = await db.query<ListedOperation>(
    `select id, instance_id, binding_id, type, state, description, created_at, finished_at
       from operations
      where (not $1 or state = 'failed')
        and ($2::int is null or created_at >= now() - make_interval(secs => $2))
      order by created_at desc, id`,
    [filter.failedOnly, filter.sinceSeconds ?? null],
  );
  return rows;
}

export interface OperationDetails extends ListedOperation {
  request: OperationRequest;
  originating_identity: OriginatingIdentity | null;
  request_identity: string | null;
  instance_usable: boolean | null;
  update_repeatable: boolean | null;
  updated_at: Date;
}

type StoredRequest = { request: string; originating_identity: string | null };

/** One operation with its request and originating identity opened. */
export async function operationDetails(
  db: Queryable,
  cipher: StateCipher,
  id: string,
): Promise<OperationDetails | undefined> {
  const { rows } = await db.query<Omit<OperationDetails, 'request' | 'originating_identity'> & StoredRequest>(
    `select id, instance_id, binding_id, type, state, description, request, originating_identity, request_identity,
            instance_usable, update_repeatable, created_at, updated_at, finished_at
       from operations where id = $1`,
    [id],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    ...row,
    request: cipher.open<OperationRequest>(row.request, place('operations', 'request', row.id)),
    originating_identity: cipher.openOrNull<OriginatingIdentity>(
      row.originating_identity,
      place('operations', 'originating_identity', row.id),
    ),
  };
}

/** The id of the latest operation of an instance (bindingId null) or of a binding. */
export async function latestOperationId(
  db: Queryable,
  instanceId: string,
  bindingId: string | null,
): Promise<string | undefined> {
  const { rows } = await db.query<{ id: string }>(
    `select id from operations
      where instance_id = $1 and binding_id is not distinct from $2
      order by created_at desc limit 1`,
    [instanceId, bindingId],
  );
  return rows[0]?.id;
}

/**
 * The operations of one type on one instance (bindingId null) or binding, oldest first: each
 * request a platform sent again, or a retry, is one of them.
 */
export async function operationsOfKind(
  db: Queryable,
  instanceId: string,
  bindingId: string | null,
  type: OperationType,
): Promise<ListedOperation[]> {
  const { rows } = await db.query<ListedOperation>(
    `select id, instance_id, binding_id, type, state, description, created_at, finished_at
       from operations
      where instance_id = $1 and binding_id is not distinct from $2 and type = $3
      order by created_at, id`,
    [instanceId, bindingId, type],
  );
  return rows;
}

export interface RecordedInstance {
  id: string;
  state: InstanceState;
}

export interface RecordedBindingId {
  id: string;
  instance_id: string;
  state: BindingState;
}

/** Every instance row's id and state, `deleted` ones included (orphans are matched against them). */
export async function recordedInstances(db: Queryable): Promise<RecordedInstance[]> {
  return (await db.query<RecordedInstance>('select id, state from service_instances')).rows;
}

/** Every binding row's id, instance and state, `deleted` ones included. */
export async function recordedBindingIds(db: Queryable): Promise<RecordedBindingId[]> {
  return (await db.query<RecordedBindingId>('select id, instance_id, state from service_bindings')).rows;
}
