import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type {
  AsyncOperationResponse,
  BindRequest,
  BindResponse,
  FetchBindingResponse,
  FetchInstanceResponse,
  JsonObject,
  LastOperationResponse,
  MaintenanceInfo,
  ProvisionRequest,
  ProvisionResponse,
  UpdateRequest,
} from '../osb/index.js';
import type { Catalog, CatalogPlan } from './catalog/catalog.js';
import { describeErrors, type ValidateFunction } from './catalog/json-schema.js';
import {
  getBinding,
  insertBinding,
  lockBinding,
  rebindBinding,
  setBindingState,
  type BindingRow,
} from './db/bindings.js';
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
  bindingLastOperation,
  getOperation,
  insertInstanceWithOperation,
  insertOperation,
  instanceLastOperation,
  type LastOperation,
  type NewOperation,
  type OperationRow,
} from './db/operations.js';
import { transaction } from './db/pool.js';
import {
  AsyncRequiredError,
  BadRequestError,
  BrokerError,
  ConcurrencyError,
  ConflictError,
  GoneError,
  MaintenanceInfoConflictError,
  NotFoundError,
  RequiresAppError,
  UnprocessableEntityError,
} from './errors.js';
import type { OperationQueue } from './jobs/operation-queue.js';
import { sameJson } from './json.js';
import { withTimeout } from '../runtime/timeout.js';
import type { Logger } from '../runtime/logger.js';
import type { BrokerMetrics } from './metrics.js';
import type {
  DeleteDetails,
  LastOperationReply,
  PollDetails,
  Reply,
  RequestOptions,
  ServiceBroker,
} from './service-broker.js';

export interface DepotBrokerOptions {
  pool: pg.Pool;
  catalog: Catalog;
  queue: OperationQueue;
  logger: Logger;
  metrics: BrokerMetrics;
  retryAfterSeconds: number;
  syncOperationTimeoutMs: number;
}

/** What a mutation decided inside its transaction; the job is added after the commit. */
type Accepted = { started: OperationRow } | { running: OperationRow };
type Decision<Done> = Accepted | { done: Done };

/**
 * Depot's broker: every rule of the spec's status-code and idempotency tables, enforced in
 * Postgres transactions (the instance row is locked for each mutation), so any number of
 * replicas give the same answers.
 */
export class DepotBroker implements ServiceBroker {
  constructor(private readonly options: DepotBrokerOptions) {}

  // ---- Service instances ----

  async provision(
    instanceId: string,
    details: ProvisionRequest,
    options: RequestOptions,
  ): Promise<Reply<200 | 202, ProvisionResponse | AsyncOperationResponse>> {
    const conflict = instanceConflict(instanceId);
    const plan = await this.conflictsFirst(
      () => {
        const plan = this.requirePlan(details.service_id, details.plan_id);
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
      const existing = await getInstance(this.options.pool, instanceId);
      if (existing?.state === 'provisioned' && sameInstance(existing, wanted)) {
        return { status: 200, body: provisionedBody(existing) };
      }
      if (existing && isLive(existing.state) && !sameInstance(existing, wanted)) throw new ConflictError(conflict);
      throw new AsyncRequiredError();
    }
    // The common case, a new instance, takes one statement; anything else locks the row.
    const created = await insertInstanceWithOperation(
      this.options.pool,
      wanted,
      this.newOperation(instanceId, null, 'provision', {}, options),
    );
    const decision = created ? { started: created } : await this.provisionExisting(wanted, options);

    // spec: 200 for an identical PUT of an instance that is fully provisioned.
    if ('done' in decision) return { status: 200, body: provisionedBody(decision.done) };
    const op = await this.accepted(decision);
    return { status: 202, body: { operation: op.id } };
  }

  /**
   * spec: 409 Conflict when the resource exists with different attributes, "whatever else is
   * wrong" with the request. Checks that need no lookup run first (the common case costs no
   * round trip); when one of them fails, the existing resource is looked up, and a difference
   * is answered with 409 instead of the check's own 4xx.
   */
  private async conflictsFirst<T>(
    checks: () => T | Promise<T>,
    differs: () => Promise<boolean>,
    conflict: string,
  ): Promise<T> {
    try {
      return await checks();
    } catch (error) {
      if (error instanceof BrokerError && error.status < 500 && (await differs())) throw new ConflictError(conflict);
      throw error;
    }
  }

  private async existingInstanceDiffers(instanceId: string, details: ProvisionRequest): Promise<boolean> {
    const existing = await getInstance(this.options.pool, instanceId);
    if (!existing || !isLive(existing.state)) return false;
    return !sameInstance(existing, instanceAttributes(instanceId, details));
  }

  private async existingBindingDiffers(instanceId: string, bindingId: string, details: BindRequest): Promise<boolean> {
    const existing = await getBinding(this.options.pool, bindingId);
    if (!existing || !isLive(existing.state)) return false;
    // A re-sent rotation may leave out what the new binding took over from its predecessor.
    const resentRotation =
      details.predecessor_binding_id !== undefined &&
      details.predecessor_binding_id === existing.predecessor_binding_id;
    const given = resentRotation ? inheritFrom(existing, details) : details;
    return !sameBinding(existing, bindingAttributes(instanceId, bindingId, given));
  }

  /** PUT for an id that exists: the idempotency table, under the instance row's lock. */
  private provisionExisting(wanted: NewInstance, options: RequestOptions): Promise<Decision<InstanceRow>> {
    const instanceId = wanted.id;
    return transaction(this.options.pool, async (client): Promise<Decision<InstanceRow>> => {
      const instance = await lockInstance(client, instanceId);
      if (!instance) throw new ConcurrencyError(`Service instance ${instanceId} was deleted meanwhile; try again.`);
      if (instance.state === 'create_failed' || instance.state === 'deleted') {
        // A new PUT after a failed create or a delete starts over (the job is idempotent).
        await reprovisionInstance(client, wanted);
        return {
          started: await insertOperation(client, this.newOperation(instanceId, null, 'provision', {}, options)),
        };
      }
      if (instance.state === 'deprovisioning') {
        throw new ConcurrencyError(`Service instance ${instanceId} is being deprovisioned.`);
      }
      // spec: 409 when the instance exists, or is being provisioned, with different attributes.
      if (!sameInstance(instance, wanted)) {
        throw new ConflictError(instanceConflict(instanceId));
      }
      if (instance.state === 'provisioning') return { running: await this.runningOperation(client, instanceId, null) };
      return { done: instance };
    });
  }

  async getInstance(instanceId: string): Promise<FetchInstanceResponse> {
    const instance = await fetchInstance(this.options.pool, instanceId);
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
      const instance = await lockInstance(client, instanceId);
      if (!instance || instance.state === 'deleted')
        throw new NotFoundError(`Service instance ${instanceId} does not exist.`);
      requireService(instance, details.service_id);
      const current = this.requirePlan(instance.service_id, instance.plan_id);
      const target = this.requirePlan(details.service_id, details.plan_id ?? instance.plan_id);
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
      const running = await activeOperations(client, instanceId);
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
          await setInstanceContext(client, instanceId, details.context);
        }
        return { done: 'unchanged' };
      }
      return { started: await insertOperation(client, this.newOperation(instanceId, null, 'update', wanted, options)) };
    });

    if ('done' in decision) return { status: 200, body: {} };
    const op = await this.accepted(decision);
    return { status: 202, body: { operation: op.id } };
  }

  async deprovision(
    instanceId: string,
    details: DeleteDetails,
    options: RequestOptions,
  ): Promise<Reply<202, AsyncOperationResponse>> {
    this.requirePlan(details.service_id, details.plan_id);
    const decision = await transaction(this.options.pool, async (client): Promise<Accepted> => {
      const instance = await lockInstance(client, instanceId);
      // spec: 410 Gone if the instance does not exist.
      if (!instance || instance.state === 'deleted')
        throw new GoneError(`Service instance ${instanceId} does not exist.`);
      requireService(instance, details.service_id);
      if (!options.acceptsIncomplete) throw new AsyncRequiredError();
      const running = await activeOperations(client, instanceId);
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
          this.newOperation(instanceId, null, 'deprovision', { previous_instance_state: instance.state }, options),
        ),
      };
    });
    const op = await this.accepted(decision);
    return { status: 202, body: { operation: op.id } };
  }

  async lastOperation(instanceId: string, details: PollDetails): Promise<LastOperationReply> {
    const op = await instanceLastOperation(this.options.pool, instanceId, details.operation);
    // spec: 404 if the instance does not exist. A deleted instance answers "succeeded" (its
    // deprovision) until the retention window ends.
    if (!op) throw new NotFoundError(`Service instance ${instanceId} does not exist.`);
    return this.lastOperationReply(op);
  }

  // ---- Service bindings ----

  async bind(
    instanceId: string,
    bindingId: string,
    details: BindRequest,
    options: RequestOptions,
  ): Promise<Reply<200 | 201 | 202, BindResponse | AsyncOperationResponse>> {
    const conflict = `Service binding ${bindingId} already exists with different attributes.`;
    const original = details;
    const plan = await this.conflictsFirst(
      () => {
        const plan = this.requirePlan(details.service_id, details.plan_id);
        if (!plan.bindable)
          throw new BadRequestError(`Plan ${plan.plan.name} of service ${plan.service.name} is not bindable.`);
        return plan;
      },
      () => this.existingBindingDiffers(instanceId, bindingId, original),
      conflict,
    );
    details = await this.conflictsFirst(
      async () => {
        const rotation = details.predecessor_binding_id !== undefined;
        const resolved = rotation ? await this.rotationOf(instanceId, bindingId, details, plan) : details;
        validateParameters(plan.validate.bind, resolved.parameters, 'service_binding.create');
        const appGuid = resolved.bind_resource?.app_guid ?? resolved.app_guid;
        if (plan.requiresApp && !appGuid) throw new RequiresAppError();
        return resolved;
      },
      () => this.existingBindingDiffers(instanceId, bindingId, original),
      conflict,
    );

    const wanted = bindingAttributes(instanceId, bindingId, details);
    const decision = await transaction(this.options.pool, async (client): Promise<Decision<BindingRow>> => {
      const instance = await lockInstance(client, instanceId);
      if (!instance || instance.state === 'deleted')
        throw new NotFoundError(`Service instance ${instanceId} does not exist.`);
      const binding = await lockBinding(client, bindingId);
      // Binding ids are globally unique (spec): one in use under another instance, whatever its
      // state, is a conflict; taking it over would orphan that instance's resources.
      if (binding && binding.instance_id !== instanceId) {
        throw new ConflictError(`Service binding ${bindingId} belongs to another service instance.`);
      }
      if (binding && isLive(binding.state)) {
        // spec: 409 when the binding exists, or is being created, with different attributes.
        if (!sameBinding(binding, wanted)) throw new ConflictError(conflict);
        if (binding.state === 'bound') return { done: binding };
        if (binding.state === 'binding') return { running: await this.runningOperation(client, instanceId, bindingId) };
        throw new ConcurrencyError(`Service binding ${bindingId} is being deleted.`);
      }
      requireService(instance, details.service_id);
      if (instance.plan_id !== details.plan_id) {
        throw new BadRequestError(`plan_id must be the plan of service instance ${instanceId}.`);
      }
      if (instance.state === 'create_failed') {
        throw new BadRequestError(`Service instance ${instanceId} failed to provision and cannot be bound.`);
      }
      if (instance.state !== 'provisioned') {
        throw new ConcurrencyError(
          `Service instance ${instanceId} is being ` +
            `${instance.state === 'provisioning' ? 'provisioned' : 'deprovisioned'}.`,
        );
      }
      const instanceOp = (await activeOperations(client, instanceId)).find((op) => op.binding_id === null);
      if (instanceOp)
        throw new ConcurrencyError(`Service instance ${instanceId} has a ${instanceOp.type} operation in progress.`);
      if (wanted.predecessor_binding_id !== null) {
        // The predecessor, checked again under lock: an unbind may have committed meanwhile.
        requireRotatablePredecessor(
          await lockBinding(client, wanted.predecessor_binding_id),
          instanceId,
          wanted.predecessor_binding_id,
        );
      }
      if (binding) {
        await rebindBinding(client, wanted); // a deleted or failed binding of this instance, bound again
      } else if (!(await insertBinding(client, wanted))) {
        // Another replica inserted this binding id since our lock attempt: let the client retry.
        throw new ConcurrencyError(`Service binding ${bindingId} is being created by another request.`);
      }
      return { started: await insertOperation(client, this.newOperation(instanceId, bindingId, 'bind', {}, options)) };
    });

    // spec: 200 for an identical PUT of a binding that exists, with the same body.
    if ('done' in decision) return { status: 200, body: decision.done.response ?? {} };
    const op = await this.accepted(decision);
    if (options.acceptsIncomplete) return { status: 202, body: { operation: op.id } };
    // Synchronous platforms (curl, a plain PUT): wait for the job and answer 201.
    await this.completeSynchronously(op);
    const binding = await getBinding(this.options.pool, bindingId);
    return { status: 201, body: binding?.response ?? {} };
  }

  /**
   * spec (v2.17, binding rotation): the predecessor MUST be a non-expired binding of the same
   * instance, and the plan `binding_rotatable`. The new binding is the predecessor's twin: same
   * parameters and bind_resource, credentials of its own; both work until each is unbound.
   */
  private async rotationOf(
    instanceId: string,
    bindingId: string,
    details: BindRequest,
    plan: CatalogPlan,
  ): Promise<BindRequest> {
    const predecessorId = details.predecessor_binding_id!;
    // spec: a platform MUST NOT rotate bindings of plans without binding_rotatable.
    if (!plan.plan.binding_rotatable) {
      throw new BadRequestError(`Plan ${plan.plan.name} does not support binding rotation (predecessor_binding_id).`);
    }
    if (predecessorId === bindingId)
      throw new BadRequestError('predecessor_binding_id must name another binding than the new one.');
    // A re-sent rotation whose binding exists is compared with that binding (its predecessor
    // may be gone by now: the answer is still 200, or 202 while it is being created).
    const existing = await getBinding(this.options.pool, bindingId);
    const resent =
      existing?.instance_id === instanceId &&
      existing.predecessor_binding_id === predecessorId &&
      isLive(existing.state);
    let predecessor: BindingRow;
    if (resent) {
      predecessor = existing;
    } else {
      const found = await getBinding(this.options.pool, predecessorId);
      requireRotatablePredecessor(found, instanceId, predecessorId);
      predecessor = found;
    }
    const kept: Array<[string, unknown, unknown]> = [
      ['parameters', details.parameters, predecessor.parameters],
      ['bind_resource', details.bind_resource, predecessor.bind_resource],
      ['app_guid', details.app_guid, predecessor.app_guid],
    ];
    const changed = kept
      .filter(([, given, old]) => given !== undefined && !sameJson(given, old))
      .map(([field]) => field);
    if (changed.length > 0) {
      throw new BadRequestError(
        `A rotation renews credentials only: ${changed.join(', ')} ` +
          `must be left out or be those of binding ${predecessorId}.`,
      );
    }
    return inheritFrom(predecessor, details);
  }

  async getBinding(instanceId: string, bindingId: string): Promise<FetchBindingResponse> {
    const binding = await getBinding(this.options.pool, bindingId);
    // spec: 404 if the binding does not exist or its creation is still in progress.
    if (
      !binding ||
      binding.instance_id !== instanceId ||
      (binding.state !== 'bound' && binding.state !== 'unbinding')
    ) {
      throw new NotFoundError(`Service binding ${bindingId} does not exist.`);
    }
    return { ...(binding.response ?? {}), parameters: binding.parameters };
  }

  async unbind(
    instanceId: string,
    bindingId: string,
    details: DeleteDetails,
    options: RequestOptions,
  ): Promise<Reply<200 | 202, Record<string, never> | AsyncOperationResponse>> {
    this.requirePlan(details.service_id, details.plan_id);
    const decision = await transaction(this.options.pool, async (client): Promise<Accepted> => {
      const instance = await lockInstance(client, instanceId);
      const binding = instance && (await lockBinding(client, bindingId));
      // spec: 410 Gone if the binding does not exist.
      if (!binding || binding.instance_id !== instanceId || binding.state === 'deleted') {
        throw new GoneError(`Service binding ${bindingId} does not exist.`);
      }
      const running = await activeOperations(client, instanceId);
      const mine = running.find((op) => op.binding_id === bindingId);
      // spec: a re-sent DELETE gets the same operation while the unbind runs.
      if (mine?.type === 'unbind') return { running: mine };
      if (mine) throw new ConcurrencyError(`Service binding ${bindingId} is being created.`);
      const instanceOp = running.find((op) => op.binding_id === null);
      if (instanceOp)
        throw new ConcurrencyError(`Service instance ${instanceId} has a ${instanceOp.type} operation in progress.`);
      await setBindingState(client, bindingId, 'unbinding');
      return {
        started: await insertOperation(
          client,
          this.newOperation(instanceId, bindingId, 'unbind', { previous_binding_state: binding.state }, options),
        ),
      };
    });
    const op = await this.accepted(decision);
    if (options.acceptsIncomplete) return { status: 202, body: { operation: op.id } };
    await this.completeSynchronously(op);
    return { status: 200, body: {} };
  }

  async lastBindingOperation(instanceId: string, bindingId: string, details: PollDetails): Promise<LastOperationReply> {
    const op = await bindingLastOperation(this.options.pool, instanceId, bindingId, details.operation);
    if (!op) throw new NotFoundError(`Service binding ${bindingId} does not exist.`);
    return this.lastOperationReply(op);
  }

  // ---- Shared steps ----

  private requirePlan(serviceId: string, planId: string): CatalogPlan {
    if (!this.options.catalog.service(serviceId)) {
      throw new BadRequestError(`service_id ${JSON.stringify(serviceId)} is not in the catalog.`);
    }
    const plan = this.options.catalog.plan(serviceId, planId);
    if (!plan) throw new BadRequestError(`plan_id ${JSON.stringify(planId)} is not a plan of service ${serviceId}.`);
    return plan;
  }

  private newOperation(
    instanceId: string,
    bindingId: string | null,
    type: NewOperation['type'],
    request: NewOperation['request'],
    options: RequestOptions,
  ): NewOperation {
    return {
      id: randomUUID(),
      instance_id: instanceId,
      binding_id: bindingId,
      type,
      request,
      originating_identity: options.originatingIdentity,
      request_identity: options.requestIdentity,
    };
  }

  private async runningOperation(
    client: pg.PoolClient,
    instanceId: string,
    bindingId: string | null,
  ): Promise<OperationRow> {
    const op = (await activeOperations(client, instanceId)).find((o) => o.binding_id === bindingId);
    if (!op) throw new ConcurrencyError('The operation in progress just ended; try again.');
    return op;
  }

  /** After the commit: adds the job of a started operation (a running one has its job already). */
  private async accepted(decision: Accepted): Promise<OperationRow> {
    if ('running' in decision) return decision.running;
    const op = decision.started;
    this.options.metrics.operationsStarted.inc({ type: op.type });
    try {
      await withTimeout(this.options.queue.enqueue(op.id, op.type), 2000, 'Redis did not answer within 2 seconds');
    } catch (error) {
      // The operation is recorded; the sweeper adds its job once Redis answers again.
      this.options.logger.warn({ err: error, operationId: op.id }, 'could not add the job now; the sweeper will');
    }
    return op;
  }

  /**
   * Waits until a bind or unbind has ended, however far the replica that started it has got;
   * 500 with its description if it failed, 504 if it is still running at the timeout.
   */
  private async completeSynchronously(op: OperationRow): Promise<void> {
    let finished: OperationRow | undefined;
    const ended = await this.options.queue.waitUntilEnded(op.id, this.options.syncOperationTimeoutMs, async () => {
      finished = await getOperation(this.options.pool, op.id);
      return finished === undefined || finished.state !== 'in progress';
    });
    if (!ended || !finished) {
      throw new BrokerError(
        504,
        `The ${op.type} did not finish within ${this.options.syncOperationTimeoutMs / 1000} seconds; it goes on. ` +
          'Send the request again to get its result, or use accepts_incomplete=true.',
      );
    }
    if (finished.state === 'failed') throw new BrokerError(500, finished.description ?? `The ${op.type} failed.`);
  }

  private lastOperationReply(op: LastOperation): LastOperationReply {
    const body: LastOperationResponse = { state: op.state };
    if (op.description) body.description = op.description;
    if (op.instance_usable !== null) body.instance_usable = op.instance_usable;
    if (op.update_repeatable !== null) body.update_repeatable = op.update_repeatable;
    return op.state === 'in progress' ? { body, retryAfterSeconds: this.options.retryAfterSeconds } : { body };
  }
}

/** spec (v2.17): the predecessor MUST be a non-expired binding of the same instance (400 otherwise). */
function requireRotatablePredecessor(
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
function requireService(instance: InstanceRow, serviceId: string): void {
  if (instance.service_id !== serviceId) {
    throw new BadRequestError(`service_id does not match the service of instance ${instance.id}.`);
  }
}

function instanceConflict(instanceId: string): string {
  return `Service instance ${instanceId} already exists with different attributes.`;
}

/**
 * A rotation's request, with what it leaves out taken over from `from` (the predecessor, or the
 * binding a re-sent rotation made): parameters, bind_resource and app_guid.
 */
function inheritFrom(from: BindingRow, details: BindRequest): BindRequest {
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
function isLive(state: string): boolean {
  return state !== 'deleted' && state !== 'create_failed';
}

/** What an identical provision PUT must repeat. */
function instanceAttributes(instanceId: string, details: ProvisionRequest) {
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
function bindingAttributes(instanceId: string, bindingId: string, details: BindRequest) {
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
function sameBinding(binding: BindingRow, wanted: ReturnType<typeof bindingAttributes>): boolean {
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
function sameInstance(
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

function provisionedBody(instance: InstanceRow): ProvisionResponse {
  return instance.dashboard_url ? { dashboard_url: instance.dashboard_url } : {};
}

/** Plan schema check: 400 naming every failing field, nothing created. */
function validateParameters(
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
function checkMaintenanceInfo(plan: CatalogPlan, requested: MaintenanceInfo | undefined): void {
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

function sameUpdate(
  op: OperationRow,
  wanted: { plan_id: string; parameters: JsonObject; maintenance_info: MaintenanceInfo | null },
): boolean {
  return (
    op.request.plan_id === wanted.plan_id &&
    sameJson(op.request.parameters, wanted.parameters) &&
    op.request.maintenance_info?.version === wanted.maintenance_info?.version
  );
}
