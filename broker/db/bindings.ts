import type { BindResource, BindResponse, JsonObject } from '../../osb/index.js';
import type { Queryable } from './pool.js';

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

export async function lockBinding(db: Queryable, id: string): Promise<BindingRow | undefined> {
  const { rows } = await db.query<BindingRow>(`select ${COLUMNS} from service_bindings where id = $1 for update`, [id]);
  return rows[0];
}

export async function getBinding(db: Queryable, id: string): Promise<BindingRow | undefined> {
  const { rows } = await db.query<BindingRow>(`select ${COLUMNS} from service_bindings where id = $1`, [id]);
  return rows[0];
}

/** Inserts a binding in state `binding`; undefined when the id is taken. */
export async function insertBinding(db: Queryable, binding: NewBinding): Promise<BindingRow | undefined> {
  const { rows } = await db.query<BindingRow>(
    `insert into service_bindings
       (id, instance_id, service_id, plan_id, app_guid, bind_resource, context, parameters,
        predecessor_binding_id, state)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'binding')
     on conflict (id) do nothing
     returning ${COLUMNS}`,
    bindingValues(binding),
  );
  return rows[0];
}

/** A binding whose create failed, or that was deleted, starts again with new attributes. */
export async function rebindBinding(db: Queryable, binding: NewBinding): Promise<BindingRow> {
  await db.query('delete from operations where binding_id = $1', [binding.id]);
  const { rows } = await db.query<BindingRow>(
    `update service_bindings set instance_id = $2, service_id = $3, plan_id = $4, app_guid = $5,
       bind_resource = $6, context = $7, parameters = $8, predecessor_binding_id = $9, response = null,
       state = 'binding',
       created_at = now(), updated_at = now(), deleted_at = null
     where id = $1 returning ${COLUMNS}`,
    bindingValues(binding),
  );
  return rows[0]!;
}

function bindingValues(b: NewBinding): unknown[] {
  return [
    b.id,
    b.instance_id,
    b.service_id,
    b.plan_id,
    b.app_guid,
    b.bind_resource,
    b.context,
    b.parameters,
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

export async function setBindingResponse(db: Queryable, id: string, response: BindResponse): Promise<void> {
  await db.query(`update service_bindings set state = 'bound', response = $2, updated_at = now() where id = $1`, [
    id,
    response,
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
