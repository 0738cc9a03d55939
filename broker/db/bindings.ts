import type { BindResource, BindResponse, JsonObject } from '../../osb/index.js';
import type { StateCipher } from '../crypto/state-cipher.js';
import type { Queryable } from './pool.js';
import { place } from './sealed-columns.js';

export type BindingState = 'binding' | 'bound' | 'create_failed' | 'unbinding' | 'deleted';

export interface BindingRow {
  id: string;
  instance_id: string;
  service_id: string;
  plan_id: string;
  app_guid: string | null;
  bind_resource: BindResource | null;
  context: JsonObject;
  parameters: JsonObject;
  /** Rotation (OSB v2.17): the binding this one replaces. */
  predecessor_binding_id: string | null;
  /** The bind response body, once bound. Holds credentials: never log it. */
  response: BindResponse | null;
  state: BindingState;
}

export type NewBinding = Omit<BindingRow, 'state' | 'response'>;

const COLUMNS =
  'id, instance_id, service_id, plan_id, app_guid, bind_resource, context, parameters, ' +
  'predecessor_binding_id, response, state';

/** A row as stored: the request's bind_resource, context and parameters, and the response, sealed. */
interface StoredBinding extends Omit<BindingRow, 'bind_resource' | 'context' | 'parameters' | 'response'> {
  bind_resource: string | null;
  context: string;
  parameters: string;
  response: string | null;
}

const at = (column: string, id: string) => place('service_bindings', column, id);

function opened(cipher: StateCipher, row: StoredBinding | undefined): BindingRow | undefined {
  if (!row) return undefined;
  return {
    ...row,
    bind_resource: cipher.openOrNull<BindResource>(row.bind_resource, at('bind_resource', row.id)),
    context: cipher.open<JsonObject>(row.context, at('context', row.id)),
    parameters: cipher.open<JsonObject>(row.parameters, at('parameters', row.id)),
    response: cipher.openOrNull<BindResponse>(row.response, at('response', row.id)),
  };
}

export async function lockBinding(db: Queryable, cipher: StateCipher, id: string): Promise<BindingRow | undefined> {
  const { rows } = await db.query<StoredBinding>(`select ${COLUMNS} from service_bindings where id = $1 for update`, [
    id,
  ]);
  return opened(cipher, rows[0]);
}

export async function getBinding(db: Queryable, cipher: StateCipher, id: string): Promise<BindingRow | undefined> {
  const { rows } = await db.query<StoredBinding>(`select ${COLUMNS} from service_bindings where id = $1`, [id]);
  return opened(cipher, rows[0]);
}

/** Inserts a binding in state `binding`; false when the id is taken. */
export async function insertBinding(db: Queryable, cipher: StateCipher, binding: NewBinding): Promise<boolean> {
  const { rowCount } = await db.query(
    `insert into service_bindings
       (id, instance_id, service_id, plan_id, app_guid, bind_resource, context, parameters,
        predecessor_binding_id, state)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'binding')
     on conflict (id) do nothing`,
    bindingValues(cipher, binding),
  );
  return rowCount === 1;
}

/** A binding whose create failed, or that was deleted, starts again with new attributes. */
export async function rebindBinding(db: Queryable, cipher: StateCipher, binding: NewBinding): Promise<void> {
  await db.query('delete from operations where binding_id = $1', [binding.id]);
  await db.query(
    `update service_bindings set instance_id = $2, service_id = $3, plan_id = $4, app_guid = $5,
       bind_resource = $6, context = $7, parameters = $8, predecessor_binding_id = $9, response = null,
       state = 'binding',
       created_at = now(), updated_at = now(), deleted_at = null
     where id = $1`,
    bindingValues(cipher, binding),
  );
}

function bindingValues(cipher: StateCipher, b: NewBinding): unknown[] {
  return [
    b.id,
    b.instance_id,
    b.service_id,
    b.plan_id,
    b.app_guid,
    cipher.sealOrNull(b.bind_resource, at('bind_resource', b.id)),
    cipher.seal(b.context, at('context', b.id)),
    cipher.seal(b.parameters, at('parameters', b.id)),
    b.predecessor_binding_id,
  ];
}

export async function setBindingState(db: Queryable, id: string, state: BindingState): Promise<void> {
  await db.query(
    `update service_bindings set state = $2, updated_at = now(),
       deleted_at = case when $2 = 'deleted' then now() else null end,
       response = case when $2 = 'deleted' then null else response end
     where id = $1`,
    [id, state],
  );
}

export async function setBindingResponse(
  db: Queryable,
  cipher: StateCipher,
  id: string,
  response: BindResponse,
): Promise<void> {
  await db.query(`update service_bindings set state = 'bound', response = $2, updated_at = now() where id = $1`, [
    id,
    cipher.seal(response, at('response', id)),
  ]);
}

/** Deprovision removes the instance's resources, bindings included. */
export async function deleteInstanceBindings(db: Queryable, instanceId: string): Promise<void> {
  await db.query(
    `update service_bindings set state = 'deleted', response = null, deleted_at = now(), updated_at = now()
     where instance_id = $1 and state <> 'deleted'`,
    [instanceId],
  );
}

export async function purgeDeletedBindings(db: Queryable, retentionHours: number): Promise<number> {
  const { rowCount } = await db.query(
    `delete from service_bindings where state = 'deleted' and deleted_at < now() - make_interval(hours => $1)`,
    [retentionHours],
  );
  return rowCount ?? 0;
}
