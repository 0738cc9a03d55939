import type { JsonObject } from '../../osb/index.js';
import type { StateCipher } from '../crypto/state-cipher.js';
import type { Queryable } from './pool.js';
import { place } from './sealed-columns.js';

/** A provisioned instance due for a drift check, locked (with SKIP LOCKED) until the transaction ends. */
export interface DueInstance {
  id: string;
  service_id: string;
  plan_id: string;
  plan_settings: JsonObject | null;
  parameters: JsonObject;
  context: JsonObject;
}

/** The moment before which a check is due: `periodSeconds` ago, by the database's clock. */
export async function driftCutoff(db: Queryable, periodSeconds: number): Promise<Date> {
  const { rows } = await db.query<{ cutoff: Date }>('select clock_timestamp() - make_interval(secs => $1) as cutoff', [
    periodSeconds,
  ]);
  return rows[0]!.cutoff;
}

/** A check that could not ask the server comes due again in `retrySeconds`. */
export async function postponeDriftCheck(
  db: Queryable,
  id: string,
  periodSeconds: number,
  retrySeconds: number,
): Promise<void> {
  await db.query(
    `update service_instances set drift_checked_at = now() - make_interval(secs => $2) + make_interval(secs => $3)
      where id = $1`,
    [id, periodSeconds, retrySeconds],
  );
}

/**
 * Claims the next provisioned instance not checked since `cutoff` (never checked first) on
 * which no operation runs, and marks it checked. The row stays locked until the caller's
 * transaction ends, so no operation can be accepted on it while its objects are put back.
 */
export async function claimDueInstance(
  db: Queryable,
  cipher: StateCipher,
  cutoff: Date,
): Promise<DueInstance | undefined> {
  const { rows } = await db.query<
    Omit<DueInstance, 'parameters' | 'context'> & { parameters: string; context: string }
  >(
    `update service_instances i set drift_checked_at = now()
      where id = (
        select id from service_instances c
         where c.state = 'provisioned'
           and (c.drift_checked_at is null or c.drift_checked_at < $1)
           and not exists (select 1 from operations o where o.instance_id = c.id and o.state = 'in progress')
         order by c.drift_checked_at nulls first limit 1
         for update skip locked)
      returning id, service_id, plan_id, plan_settings, parameters, context`,
    [cutoff],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    ...row,
    parameters: cipher.open<JsonObject>(row.parameters, place('service_instances', 'parameters', row.id)),
    context: cipher.open<JsonObject>(row.context, place('service_instances', 'context', row.id)),
  };
}

export interface BoundBinding {
  id: string;
  parameters: JsonObject;
  app_guid: string | null;
  credentials: JsonObject;
  expires_at: string | undefined;
}

/** The instance's bound bindings with the credentials the platform holds (from the sealed response). */
export async function boundBindings(db: Queryable, cipher: StateCipher, instanceId: string): Promise<BoundBinding[]> {
  const { rows } = await db.query<{ id: string; parameters: string; app_guid: string | null; response: string }>(
    `select id, parameters, app_guid, response from service_bindings
      where instance_id = $1 and state = 'bound' and response is not null`,
    [instanceId],
  );
  return rows.map((row) => {
    const response = cipher.open<{ credentials?: JsonObject; metadata?: { expires_at?: string } }>(
      row.response,
      place('service_bindings', 'response', row.id),
    );
    return {
      id: row.id,
      app_guid: row.app_guid,
      parameters: cipher.open<JsonObject>(row.parameters, place('service_bindings', 'parameters', row.id)),
      credentials: response.credentials ?? {},
      expires_at: response.metadata?.expires_at,
    };
  });
}
