/**
 * The spec's rules for what makes two requests the same (idempotency), the checks a request must
 * pass before anything is written, and the wording and bodies they answer with: functions of the
 * request, the catalog and the rows, with no I/O.
 */
import type { BindRequest, JsonObject, MaintenanceInfo, ProvisionRequest, ProvisionResponse } from '../osb/index.js';
import type { CatalogPlan } from './catalog/catalog.js';
import { describeErrors, type ValidateFunction } from './catalog/json-schema.js';
import type { BindingRow } from './db/bindings.js';
import type { InstanceRow, NewInstance } from './db/instances.js';
import type { OperationRow } from './db/operations.js';
import { BadRequestError, MaintenanceInfoConflictError } from './errors.js';
import { sameJson } from './json.js';

/** spec (v2.17): the predecessor MUST be a non-expired binding of the same instance (400 otherwise). */
export function requireRotatablePredecessor(
  predecessor: BindingRow | undefined,
  instanceId: string,
  predecessorId: string,
): asserts predecessor is BindingRow {
  if (!predecessor || predecessor.instance_id !== instanceId || predecessor.state !== 'bound') {
    throw new BadRequestError(
      `predecessor_binding_id ${JSON.stringify(predecessorId)} ` +
        `is not a binding of service instance ${instanceId} that is bound.`,
    );
  }
  const expiresAt = predecessor.response?.metadata?.expires_at;
  if (expiresAt !== undefined && Date.parse(expiresAt) <= Date.now()) {
    throw new BadRequestError(
      `Service binding ${predecessorId} expired at ${expiresAt}; create a new binding instead of rotating it.`,
    );
  }
}

/** The request's service_id must be the instance's (400 otherwise). */
export function requireService(instance: InstanceRow, serviceId: string): void {
  if (instance.service_id !== serviceId) {
    throw new BadRequestError(`service_id does not match the service of instance ${instance.id}.`);
  }
}

export function instanceConflict(instanceId: string): string {
  return `Service instance ${instanceId} already exists with different attributes.`;
}

/**
 * A rotation's request, with what it leaves out taken over from `from` (the predecessor, or the
 * binding a re-sent rotation made): parameters, bind_resource and app_guid.
 */
export function inheritFrom(from: BindingRow, details: BindRequest): BindRequest {
  const bindResource = details.bind_resource ?? from.bind_resource;
  const appGuid = details.app_guid ?? from.app_guid;
  return {
    ...details,
    parameters: details.parameters ?? from.parameters,
    ...(bindResource ? { bind_resource: bindResource } : {}),
    ...(appGuid ? { app_guid: appGuid } : {}),
  };
}

/** A resource that exists for the idempotency rules: not deleted, and not a failed create. */
export function isLive(state: string): boolean {
  return state !== 'deleted' && state !== 'create_failed';
}

/** What an identical provision PUT must repeat. */
export function instanceAttributes(instanceId: string, details: ProvisionRequest) {
  return {
    id: instanceId,
    service_id: details.service_id,
    plan_id: details.plan_id,
    organization_guid: details.organization_guid,
    space_guid: details.space_guid,
    context: details.context ?? {},
    parameters: details.parameters ?? {},
  };
}

/** What an identical bind PUT must repeat (and the binding row it creates). */
export function bindingAttributes(instanceId: string, bindingId: string, details: BindRequest) {
  return {
    id: bindingId,
    instance_id: instanceId,
    service_id: details.service_id,
    plan_id: details.plan_id,
    app_guid: details.app_guid ?? null,
    bind_resource: details.bind_resource ?? null,
    context: details.context ?? {},
    parameters: details.parameters ?? {},
    predecessor_binding_id: details.predecessor_binding_id ?? null,
  };
}

/** spec: an identical bind PUT has the same service, plan, app, bind_resource and parameters. */
export function sameBinding(binding: BindingRow, wanted: ReturnType<typeof bindingAttributes>): boolean {
  return (
    binding.instance_id === wanted.instance_id &&
    binding.service_id === wanted.service_id &&
    binding.plan_id === wanted.plan_id &&
    binding.app_guid === wanted.app_guid &&
    binding.predecessor_binding_id === wanted.predecessor_binding_id &&
    sameJson(binding.bind_resource, wanted.bind_resource) &&
    sameJson(binding.parameters, wanted.parameters)
  );
}

/** spec: an identical PUT compares service, plan, organization, space and parameters. */
export function sameInstance(
  instance: InstanceRow,
  wanted: Pick<NewInstance, 'service_id' | 'plan_id' | 'organization_guid' | 'space_guid' | 'parameters'>,
): boolean {
  return (
    instance.service_id === wanted.service_id &&
    instance.plan_id === wanted.plan_id &&
    instance.organization_guid === wanted.organization_guid &&
    instance.space_guid === wanted.space_guid &&
    sameJson(instance.parameters, wanted.parameters)
  );
}

export function provisionedBody(instance: InstanceRow): ProvisionResponse {
  return instance.dashboard_url ? { dashboard_url: instance.dashboard_url } : {};
}

/** Plan schema check: 400 naming every failing field, nothing created. */
export function validateParameters(
  validate: ValidateFunction | undefined,
  parameters: JsonObject | undefined,
  schemaName: string,
): void {
  if (!validate || parameters === undefined) return;
  if (!validate(parameters)) {
    throw new BadRequestError(
      `parameters do not match the plan's ${schemaName} schema: ` +
        `${describeErrors(validate.errors, 'parameters').join('; ')}.`,
    );
  }
}

/** spec: 422 MaintenanceInfoConflict when maintenance_info.version differs from the plan's. */
export function checkMaintenanceInfo(plan: CatalogPlan, requested: MaintenanceInfo | undefined): void {
  const planVersion = plan.plan.maintenance_info?.version;
  // A maintenance_info without version counts as absent.
  if (requested?.version !== undefined && requested.version !== planVersion) {
    throw new MaintenanceInfoConflictError(
      planVersion
        ? `maintenance_info.version ${requested.version} is not the version of plan ${plan.plan.name} ` +
            `(${planVersion}); update the service instance first.`
        : `Plan ${plan.plan.name} has no maintenance_info; send none.`,
    );
  }
}

export function sameUpdate(
  op: OperationRow,
  wanted: { plan_id: string; parameters: JsonObject; maintenance_info: MaintenanceInfo | null },
): boolean {
  return (
    op.request.plan_id === wanted.plan_id &&
    sameJson(op.request.parameters, wanted.parameters) &&
    op.request.maintenance_info?.version === wanted.maintenance_info?.version
  );
}
