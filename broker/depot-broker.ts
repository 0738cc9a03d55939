import type {
  AsyncOperationResponse,
  BindRequest,
  BindResponse,
  FetchBindingResponse,
  FetchInstanceResponse,
  ProvisionRequest,
  ProvisionResponse,
  UpdateRequest,
} from '../osb/index.js';
import { BindingBroker } from './binding-broker.js';
import {
  checkMaintenanceInfo,
  instanceAttributes,
  instanceConflict,
  isLive,
  provisionedBody,
  requireService,
  sameInstance,
  sameUpdate,
  validateParameters,
} from './request-rules.js';
import {
  fetchInstance,
  getInstance,
  lockInstance,
  reprovisionInstance,
  setInstanceContext,
  setInstanceState,
  type InstanceRow,
  type NewInstance,
} from './db/instances.js';
import {
  activeOperations,
  insertInstanceWithOperation,
  insertOperation,
  instanceLastOperation,
} from './db/operations.js';
import { transaction } from './db/pool.js';
import {
  AsyncRequiredError,
  BadRequestError,
  ConcurrencyError,
  ConflictError,
  GoneError,
  NotFoundError,
  UnprocessableEntityError,
} from './errors.js';
import { sameJson } from './json.js';
import { OperationSteps, type Accepted, type BrokerParts, type Decision } from './operation-steps.js';
import type {
  DeleteDetails,
  LastOperationReply,
  PollDetails,
  Reply,
  RequestOptions,
  ServiceBroker,
} from './service-broker.js';

/**
 * Depot's broker: every rule of the spec's status-code and idempotency tables, enforced in
 * Postgres transactions (the instance row is locked for each mutation), so any number of
 * replicas give the same answers.
 */
export class DepotBroker implements ServiceBroker {
  private readonly steps: OperationSteps;
  private readonly bindings: BindingBroker;

  constructor(private readonly options: BrokerParts) {
    this.steps = new OperationSteps(options);
    this.bindings = new BindingBroker(options, this.steps);
  }

  // ---- Service instances ----

  async provision(
    instanceId: string,
    details: ProvisionRequest,
    options: RequestOptions,
  ): Promise<Reply<200 | 202, ProvisionResponse | AsyncOperationResponse>> {
    const conflict = instanceConflict(instanceId);
    const plan = await this.steps.conflictsFirst(
      () => {
        const plan = this.steps.requirePlan(details.service_id, details.plan_id);
        validateParameters(plan.validate.provision, details.parameters, 'service_instance.create');
        checkMaintenanceInfo(plan, details.maintenance_info);
        return plan;
      },
      () => this.existingInstanceDiffers(instanceId, details),
      conflict,
    );
    const wanted = {
      ...instanceAttributes(instanceId, details),
      maintenance_info: plan.plan.maintenance_info ?? null,
      plan_settings: plan.settings,
    };
    if (!options.acceptsIncomplete) {
      // spec: 200 for an identical PUT of a provisioned instance is the synchronous answer;
      // anything else would need a job: 422 AsyncRequired.
      const existing = await getInstance(this.options.pool, this.options.cipher, instanceId);
      if (existing?.state === 'provisioned' && sameInstance(existing, wanted)) {
        return { status: 200, body: provisionedBody(existing) };
      }
      if (existing && isLive(existing.state) && !sameInstance(existing, wanted)) throw new ConflictError(conflict);
      throw new AsyncRequiredError();
    }
    // The common case, a new instance, takes one statement; anything else locks the row.
    const created = await insertInstanceWithOperation(
      this.options.pool,
      this.options.cipher,
      wanted,
      this.steps.newOperation(instanceId, null, 'provision', {}, options),
    );
    const decision = created ? { started: created } : await this.provisionExisting(wanted, options);

    // spec: 200 for an identical PUT of an instance that is fully provisioned.
    if ('done' in decision) return { status: 200, body: provisionedBody(decision.done) };
    const op = await this.steps.accepted(decision);
    return { status: 202, body: { operation: op.id } };
  }

  private async existingInstanceDiffers(instanceId: string, details: ProvisionRequest): Promise<boolean> {
    const existing = await getInstance(this.options.pool, this.options.cipher, instanceId);
    if (!existing || !isLive(existing.state)) return false;
    return !sameInstance(existing, instanceAttributes(instanceId, details));
  }

  /** PUT for an id that exists: the idempotency table, under the instance row's lock. */
  private provisionExisting(wanted: NewInstance, options: RequestOptions): Promise<Decision<InstanceRow>> {
    const instanceId = wanted.id;
    return transaction(this.options.pool, async (client): Promise<Decision<InstanceRow>> => {
      const instance = await lockInstance(client, this.options.cipher, instanceId);
      if (!instance) throw new ConcurrencyError(`Service instance ${instanceId} was deleted meanwhile; try again.`);
      if (instance.state === 'create_failed' || instance.state === 'deleted') {
        // A new PUT after a failed create or a delete starts over (the job is idempotent).
        await reprovisionInstance(client, this.options.cipher, wanted);
        return {
          started: await insertOperation(
            client,
            this.options.cipher,
            this.steps.newOperation(instanceId, null, 'provision', {}, options),
          ),
        };
      }
      if (instance.state === 'deprovisioning') {
        throw new ConcurrencyError(`Service instance ${instanceId} is being deprovisioned.`);
      }
      // spec: 409 when the instance exists, or is being provisioned, with different attributes.
      if (!sameInstance(instance, wanted)) {
        throw new ConflictError(instanceConflict(instanceId));
      }
      if (instance.state === 'provisioning')
        return { running: await this.steps.runningOperation(client, instanceId, null) };
      return { done: instance };
    });
  }

  async getInstance(instanceId: string): Promise<FetchInstanceResponse> {
    const instance = await fetchInstance(this.options.pool, this.options.cipher, instanceId);
    // spec: 404 if the instance does not exist or provisioning is still in progress.
    if (
      !instance ||
      instance.state === 'provisioning' ||
      instance.state === 'create_failed' ||
      instance.state === 'deleted'
    ) {
      throw new NotFoundError(`Service instance ${instanceId} does not exist.`);
    }
    // spec: 422 ConcurrencyError while the instance is being updated.
    if (instance.updating) throw new ConcurrencyError(`Service instance ${instanceId} is being updated.`);
    return {
      service_id: instance.service_id,
      plan_id: instance.plan_id,
      parameters: instance.parameters,
      ...(instance.dashboard_url ? { dashboard_url: instance.dashboard_url } : {}),
      ...(instance.maintenance_info ? { maintenance_info: instance.maintenance_info } : {}),
    };
  }

  async update(
    instanceId: string,
    details: UpdateRequest,
    options: RequestOptions,
  ): Promise<Reply<200 | 202, Record<string, never> | AsyncOperationResponse>> {
    const service = this.options.catalog.service(details.service_id);
    if (!service) throw new BadRequestError(`service_id ${JSON.stringify(details.service_id)} is not in the catalog.`);
    // spec: 422 AsyncRequired when the plan needs accepts_incomplete=true. Every update of
    // Depot's runs as a job, so a synchronous PATCH is refused whatever it would change.
    if (!options.acceptsIncomplete) throw new AsyncRequiredError();

    const decision = await transaction(this.options.pool, async (client): Promise<Decision<'unchanged'>> => {
      const instance = await lockInstance(client, this.options.cipher, instanceId);
      if (!instance || instance.state === 'deleted')
        throw new NotFoundError(`Service instance ${instanceId} does not exist.`);
      requireService(instance, details.service_id);
      const current = this.steps.requirePlan(instance.service_id, instance.plan_id);
      const target = this.steps.requirePlan(details.service_id, details.plan_id ?? instance.plan_id);
      const planChanges = target.plan.id !== current.plan.id;
      // spec: plan changes only where plan_updateable (422: "change not supported").
      if (planChanges && !current.planUpdateable) {
        throw new UnprocessableEntityError(`Plan changes are not supported for plan ${current.plan.name}.`);
      }
      validateParameters(target.validate.update, details.parameters, 'service_instance.update');
      checkMaintenanceInfo(target, details.maintenance_info);

      // spec: an update whose maintenance_info.version is the plan's (and not the instance's)
      // is an upgrade; a plan change also moves the instance to the new plan's maintenance_info.
      const requestedVersion = details.maintenance_info?.version;
      const upgrade =
        planChanges || (requestedVersion !== undefined && requestedVersion !== instance.maintenance_info?.version);
      const wanted = {
        plan_id: target.plan.id,
        // spec: parameters absent → MUST NOT change them; present → they change those keys.
        parameters: details.parameters ? { ...instance.parameters, ...details.parameters } : instance.parameters,
        context: details.context ?? instance.context,
        maintenance_info: upgrade ? (target.plan.maintenance_info ?? null) : instance.maintenance_info,
        // The instance keeps the settings it was built with until it is upgraded; plans without
        // maintenance_info have no upgrades, so their instances follow the catalog.
        plan_settings:
          upgrade || !target.plan.maintenance_info ? target.settings : (instance.plan_settings ?? target.settings),
      };
      const running = await activeOperations(client, this.options.cipher, instanceId);
      const runningUpdate = running.find((op) => op.type === 'update');
      if (runningUpdate) {
        // spec: a re-sent PATCH gets 202 with the same operation until the update is done.
        if (sameUpdate(runningUpdate, wanted)) return { running: runningUpdate };
        throw new ConcurrencyError(`Service instance ${instanceId} is being updated.`);
      }
      if (instance.state === 'create_failed') {
        throw new UnprocessableEntityError(
          `Service instance ${instanceId} failed to provision; delete it and create it again.`,
        );
      }
      if (instance.state !== 'provisioned' || running.length > 0) {
        throw new ConcurrencyError(`Service instance ${instanceId} has another operation in progress.`);
      }
      // An upgrade (a plan change included) always changes the instance.
      const changes = upgrade || !sameJson(wanted.parameters, instance.parameters);
      if (!changes) {
        // A context-only update is recorded at once (allow_context_updates); nothing to run.
        if (details.context && service.allow_context_updates && !sameJson(details.context, instance.context)) {
          await setInstanceContext(client, this.options.cipher, instanceId, details.context);
        }
        return { done: 'unchanged' };
      }
      return {
        started: await insertOperation(
          client,
          this.options.cipher,
          this.steps.newOperation(instanceId, null, 'update', wanted, options),
        ),
      };
    });

    if ('done' in decision) return { status: 200, body: {} };
    const op = await this.steps.accepted(decision);
    return { status: 202, body: { operation: op.id } };
  }

  async deprovision(
    instanceId: string,
    details: DeleteDetails,
    options: RequestOptions,
  ): Promise<Reply<202, AsyncOperationResponse>> {
    this.steps.requirePlan(details.service_id, details.plan_id);
    const decision = await transaction(this.options.pool, async (client): Promise<Accepted> => {
      const instance = await lockInstance(client, this.options.cipher, instanceId);
      // spec: 410 Gone if the instance does not exist.
      if (!instance || instance.state === 'deleted')
        throw new GoneError(`Service instance ${instanceId} does not exist.`);
      requireService(instance, details.service_id);
      if (!options.acceptsIncomplete) throw new AsyncRequiredError();
      const running = await activeOperations(client, this.options.cipher, instanceId);
      const deleting = running.find((op) => op.type === 'deprovision');
      // spec: a re-sent DELETE gets 202 with the same operation while the delete runs.
      if (deleting) return { running: deleting };
      if (running.length > 0) {
        throw new ConcurrencyError(`Service instance ${instanceId} has a ${running[0]!.type} operation in progress.`);
      }
      await setInstanceState(client, instanceId, 'deprovisioning');
      return {
        started: await insertOperation(
          client,
          this.options.cipher,
          this.steps.newOperation(
            instanceId,
            null,
            'deprovision',
            { previous_instance_state: instance.state },
            options,
          ),
        ),
      };
    });
    const op = await this.steps.accepted(decision);
    return { status: 202, body: { operation: op.id } };
  }

  async lastOperation(instanceId: string, details: PollDetails): Promise<LastOperationReply> {
    const op = await instanceLastOperation(this.options.pool, instanceId, details.operation);
    // spec: 404 if the instance does not exist. A deleted instance answers "succeeded" (its
    // deprovision) until the retention window ends.
    if (!op) throw new NotFoundError(`Service instance ${instanceId} does not exist.`);
    return this.steps.lastOperationReply(op);
  }

  // ---- Service bindings ----

  bind(
    instanceId: string,
    bindingId: string,
    details: BindRequest,
    options: RequestOptions,
  ): Promise<Reply<200 | 201 | 202, BindResponse | AsyncOperationResponse>> {
    return this.bindings.bind(instanceId, bindingId, details, options);
  }

  getBinding(instanceId: string, bindingId: string): Promise<FetchBindingResponse> {
    return this.bindings.getBinding(instanceId, bindingId);
  }

  unbind(
    instanceId: string,
    bindingId: string,
    details: DeleteDetails,
    options: RequestOptions,
  ): Promise<Reply<200 | 202, Record<string, never> | AsyncOperationResponse>> {
    return this.bindings.unbind(instanceId, bindingId, details, options);
  }

  lastBindingOperation(instanceId: string, bindingId: string, details: PollDetails): Promise<LastOperationReply> {
    return this.bindings.lastBindingOperation(instanceId, bindingId, details);
  }
}
