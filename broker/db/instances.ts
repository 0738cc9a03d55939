import type { JsonObject, MaintenanceInfo } from '../../osb/index.js';
import type { StateCipher } from '../crypto/state-cipher.js';
import type { Queryable } from './pool.js';
import { place } from './sealed-columns.js';

export type InstanceState = 'provisioning' | 'provisioned' | 'create_failed' | 'deprovisioning' | 'deleted';

export interface InstanceRow {
  id: string;
  service_id: string;
  plan_id: string;
  organization_guid: string | null;
  space_guid: string | null;
  context: JsonObject;
  parameters: JsonObject;
  maintenance_info: MaintenanceInfo | null;
  /**
   * The plan's offering settings (`x-depot`) this instance was built with; they change only
   * with an upgrade or a plan change. Null for instances older than migration 003.
   */
  plan_settings: JsonObject | null;
  dashboard_url: string | null;
  state: InstanceState;
}

export type NewInstance = Omit<InstanceRow, 'state' | 'dashboard_url'>;

const COLUMNS =
  'id, service_id, plan_id, organization_guid, space_guid, context, parameters, maintenance_info, plan_settings, ' +
  'dashboard_url, state';

/** A row as stored: context and parameters sealed. */
type StoredInstance = Omit<InstanceRow, 'context' | 'parameters'> & { context: string; parameters: string };

function opened<T extends StoredInstance>(cipher: StateCipher, row: T | undefined) {
  if (!row) return undefined;
  return {
    ...row,
    context: cipher.open<JsonObject>(row.context, place('service_instances', 'context', row.id)),
    parameters: cipher.open<JsonObject>(row.parameters, place('service_instances', 'parameters', row.id)),
  };
}

const sealContext = (cipher: StateCipher, id: string, context: JsonObject) =>
  cipher.seal(context, place('service_instances', 'context', id));
const sealParameters = (cipher: StateCipher, id: string, parameters: JsonObject) =>
  cipher.seal(parameters, place('service_instances', 'parameters', id));

/** The instance, locked until the end of the transaction (serialises operations across replicas). */
export async function lockInstance(db: Queryable, cipher: StateCipher, id: string): Promise<InstanceRow | undefined> {
  const { rows } = await db.query<StoredInstance>({
    name: 'instances.lockInstance',
    text: `select ${COLUMNS} from service_instances where id = $1 for update`,
    values: [id],
  });
  return opened(cipher, rows[0]);
}

export async function getInstance(db: Queryable, cipher: StateCipher, id: string): Promise<InstanceRow | undefined> {
  const { rows } = await db.query<StoredInstance>({
    name: 'instances.getInstance',
    text: `select ${COLUMNS} from service_instances where id = $1`,
    values: [id],
  });
  return opened(cipher, rows[0]);
}

/**
 * Starts a new life for an instance whose create failed or that was deleted: the row takes
 * the new attributes and goes back to `provisioning`. Its bindings and operations go with the
 * old life.
 */
export async function reprovisionInstance(
  db: Queryable,
  cipher: StateCipher,
  instance: NewInstance,
): Promise<InstanceRow> {
  await db.query('delete from operations where instance_id = $1', [instance.id]);
  await db.query('delete from service_bindings where instance_id = $1', [instance.id]);
  const { rows } = await db.query<StoredInstance>(
    `update service_instances set service_id = $2, plan_id = $3, organization_guid = $4, space_guid = $5,
       context = $6, parameters = $7, maintenance_info = $8, plan_settings = $9, dashboard_url = null,
       state = 'provisioning',
       created_at = now(), updated_at = now(), deleted_at = null
     where id = $1 returning ${COLUMNS}`,
    instanceValues(cipher, instance),
  );
  return { ...rows[0]!, context: instance.context, parameters: instance.parameters };
}

export function instanceValues(cipher: StateCipher, i: NewInstance): unknown[] {
  return [
    i.id,
    i.service_id,
    i.plan_id,
    i.organization_guid,
    i.space_guid,
    sealContext(cipher, i.id, i.context),
    sealParameters(cipher, i.id, i.parameters),
    i.maintenance_info,
    i.plan_settings,
  ];
}

export async function setInstanceState(db: Queryable, id: string, state: InstanceState): Promise<void> {
  await db.query(
    `update service_instances set state = $2, updated_at = now(),
       deleted_at = case when $2 = 'deleted' then now() else null end
     where id = $1`,
    [id, state],
  );
}

/** Context-only change (allow_context_updates), applied without a job. */
export async function setInstanceContext(
  db: Queryable,
  cipher: StateCipher,
  id: string,
  context: JsonObject,
): Promise<void> {
  await db.query('update service_instances set context = $2, updated_at = now() where id = $1', [
    id,
    sealContext(cipher, id, context),
  ]);
}

/** What a successful provision or update leaves on the instance. */
export async function applyInstanceChanges(
  db: Queryable,
  cipher: StateCipher,
  id: string,
  changes: {
    plan_id: string;
    parameters: JsonObject;
    context: JsonObject;
    maintenance_info: MaintenanceInfo | null;
    plan_settings: JsonObject | null;
    dashboard_url?: string | null;
  },
): Promise<void> {
  await db.query({
    name: 'instances.applyInstanceChanges',
    text: `update service_instances set state = 'provisioned', plan_id = $2, parameters = $3, context = $4,
       maintenance_info = $5, plan_settings = $6, dashboard_url = coalesce($7, dashboard_url), updated_at = now()
     where id = $1`,
    values: [
      id,
      changes.plan_id,
      sealParameters(cipher, id, changes.parameters),
      sealContext(cipher, id, changes.context),
      changes.maintenance_info,
      changes.plan_settings,
      changes.dashboard_url ?? null,
    ],
  });
}

export interface FetchedInstance extends InstanceRow {
  /** An update operation is running (GET instance answers 422 ConcurrencyError). */
  updating: boolean;
}

/** GET instance in one round trip. */
export async function fetchInstance(
  db: Queryable,
  cipher: StateCipher,
  id: string,
): Promise<FetchedInstance | undefined> {
  const { rows } = await db.query<StoredInstance & { updating: boolean }>({
    name: 'instances.fetchInstance',
    text: `select ${COLUMNS}, exists (
       select 1 from operations o
        where o.instance_id = i.id and o.binding_id is null and o.state = 'in progress' and o.type = 'update'
     ) as updating
     from service_instances i where id = $1`,
    values: [id],
  });
  return opened(cipher, rows[0]);
}

/** Deleted instances past the retention window stop answering last_operation (then 404). */
export async function purgeDeletedInstances(db: Queryable, retentionHours: number): Promise<number> {
  const { rowCount } = await db.query(
    `delete from service_instances where state = 'deleted' and deleted_at < now() - make_interval(hours => $1)`,
    [retentionHours],
  );
  return rowCount ?? 0;
}

/** The plans that live instances are on (a catalog must keep them). */
export async function plansInUse(
  db: Queryable,
): Promise<Array<{ service_id: string; plan_id: string; instances: number }>> {
  const { rows } = await db.query<{ service_id: string; plan_id: string; instances: number }>(
    `select service_id, plan_id, count(*)::int as instances from service_instances
      where state <> 'deleted' group by service_id, plan_id`,
  );
  return rows;
}
