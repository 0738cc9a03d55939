import type pg from 'pg';
import type { AsyncOperationResponse, BindRequest, BindResponse, FetchBindingResponse } from '../osb/index.js';
import type { CatalogPlan } from './catalog/catalog.js';
import {
  bindingAttributes,
  inheritFrom,
  isLive,
  requireRotatablePredecessor,
  requireService,
  sameBinding,
  validateParameters,
} from './request-rules.js';
import {
  getBinding,
  insertBinding,
  lockBinding,
  rebindBinding,
  setBindingState,
  type BindingRow,
} from './db/bindings.js';
import { lockInstance } from './db/instances.js';
import { activeOperations, bindingLastOperation, insertOperation } from './db/operations.js';
import { transaction } from './db/pool.js';
import {
  BadRequestError,
  ConcurrencyError,
  ConflictError,
  GoneError,
  NotFoundError,
  RequiresAppError,
} from './errors.js';
import { sameJson } from './json.js';
import { OperationSteps, type Accepted, type BrokerParts, type Decision } from './operation-steps.js';
import type { DeleteDetails, LastOperationReply, PollDetails, Reply, RequestOptions } from './service-broker.js';

function bindingConflict(bindingId: string): string {
  return `Service binding ${bindingId} already exists with different attributes.`;
}

/**
 * The binding endpoints (PUT, GET and DELETE of a binding, and its last_operation), under the
 * lock of their instance's row, with the spec's idempotency rules for bindings.
 */
export class BindingBroker {
  constructor(
    private readonly options: BrokerParts,
    private readonly steps: OperationSteps,
  ) {}

  async bind(
    instanceId: string,
    bindingId: string,
    details: BindRequest,
    options: RequestOptions,
  ): Promise<Reply<200 | 201 | 202, BindResponse | AsyncOperationResponse>> {
    const resolved = await this.checkedBind(instanceId, bindingId, details);
    const wanted = bindingAttributes(instanceId, bindingId, resolved);
    const decision = await transaction(this.options.pool, (client) => this.decideBind(client, wanted, options));

    // spec: 200 for an identical PUT of a binding that exists, with the same body.
    if ('done' in decision) return { status: 200, body: decision.done.response ?? {} };
    const op = await this.steps.accepted(decision);
    if (options.acceptsIncomplete) return { status: 202, body: { operation: op.id } };
    // Synchronous platforms (curl, a plain PUT): wait for the job and answer 201.
    await this.steps.completeSynchronously(op);
    const binding = await getBinding(this.options.pool, this.options.cipher, bindingId);
    return { status: 201, body: binding?.response ?? {} };
  }

  /**
   * The checks a bind passes before the transaction (plan, rotation, schema, app), each answered
   * with 409 instead when the binding exists with other attributes; the request as a rotation
   * resolves it.
   */
  private async checkedBind(instanceId: string, bindingId: string, details: BindRequest): Promise<BindRequest> {
    const conflict = bindingConflict(bindingId);
    const differs = () => this.existingBindingDiffers(instanceId, bindingId, details);
    const plan = await this.steps.conflictsFirst(
      () => {
        const plan = this.steps.requirePlan(details.service_id, details.plan_id);
        if (!plan.bindable) {
          throw new BadRequestError(`Plan ${plan.plan.name} of service ${plan.service.name} is not bindable.`);
        }
        return plan;
      },
      differs,
      conflict,
    );
    return this.steps.conflictsFirst(
      async () => {
        const rotation = details.predecessor_binding_id !== undefined;
        const resolved = rotation ? await this.rotationOf(instanceId, bindingId, details, plan) : details;
        validateParameters(plan.validate.bind, resolved.parameters, 'service_binding.create');
        const appGuid = resolved.bind_resource?.app_guid ?? resolved.app_guid;
        if (plan.requiresApp && !appGuid) throw new RequiresAppError();
        return resolved;
      },
      differs,
      conflict,
    );
  }

  /** The bind's decision under the instance row's lock: the spec's status-code and idempotency tables. */
  private async decideBind(
    client: pg.PoolClient,
    wanted: ReturnType<typeof bindingAttributes>,
    options: RequestOptions,
  ): Promise<Decision<BindingRow>> {
    const { instance_id: instanceId, id: bindingId } = wanted;
    const instance = await lockInstance(client, this.options.cipher, instanceId);
    if (!instance || instance.state === 'deleted') {
      throw new NotFoundError(`Service instance ${instanceId} does not exist.`);
    }
    const binding = await lockBinding(client, this.options.cipher, bindingId);
    // Binding ids are globally unique (spec): one in use under another instance, whatever its
    // state, is a conflict; taking it over would orphan that instance's resources.
    if (binding && binding.instance_id !== instanceId) {
      throw new ConflictError(`Service binding ${bindingId} belongs to another service instance.`);
    }
    if (binding && isLive(binding.state)) {
      // spec: 409 when the binding exists, or is being created, with different attributes.
      if (!sameBinding(binding, wanted)) throw new ConflictError(bindingConflict(bindingId));
      if (binding.state === 'bound') return { done: binding };
      if (binding.state === 'binding') {
        return { running: await this.steps.runningOperation(client, instanceId, bindingId) };
      }
      throw new ConcurrencyError(`Service binding ${bindingId} is being deleted.`);
    }
    requireService(instance, wanted.service_id);
    if (instance.plan_id !== wanted.plan_id) {
      throw new BadRequestError(`plan_id must be the plan of service instance ${instanceId}.`);
    }
    if (instance.state === 'create_failed') {
      throw new BadRequestError(`Service instance ${instanceId} failed to provision and cannot be bound.`);
    }
    if (instance.state !== 'provisioned') {
      const doing = instance.state === 'provisioning' ? 'provisioned' : 'deprovisioned';
      throw new ConcurrencyError(`Service instance ${instanceId} is being ${doing}.`);
    }
    const instanceOp = (await activeOperations(client, this.options.cipher, instanceId)).find(
      (op) => op.binding_id === null,
    );
    if (instanceOp) {
      throw new ConcurrencyError(`Service instance ${instanceId} has a ${instanceOp.type} operation in progress.`);
    }
    if (wanted.predecessor_binding_id !== null) {
      // The predecessor, checked again under lock: an unbind may have committed meanwhile.
      const predecessor = await lockBinding(client, this.options.cipher, wanted.predecessor_binding_id);
      requireRotatablePredecessor(predecessor, instanceId, wanted.predecessor_binding_id);
    }
    if (binding) {
      // A deleted or failed binding of this instance, bound again.
      await rebindBinding(client, this.options.cipher, wanted);
    } else if (!(await insertBinding(client, this.options.cipher, wanted))) {
      // Another replica inserted this binding id since our lock attempt: let the client retry.
      throw new ConcurrencyError(`Service binding ${bindingId} is being created by another request.`);
    }
    const operation = this.steps.newOperation(instanceId, bindingId, 'bind', {}, options);
    return { started: await insertOperation(client, this.options.cipher, operation) };
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
    const existing = await getBinding(this.options.pool, this.options.cipher, bindingId);
    const resent =
      existing?.instance_id === instanceId &&
      existing.predecessor_binding_id === predecessorId &&
      isLive(existing.state);
    let predecessor: BindingRow;
    if (resent) {
      predecessor = existing;
    } else {
      const found = await getBinding(this.options.pool, this.options.cipher, predecessorId);
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
    const binding = await getBinding(this.options.pool, this.options.cipher, bindingId);
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
    this.steps.requirePlan(details.service_id, details.plan_id);
    const decision = await transaction(this.options.pool, async (client): Promise<Accepted> => {
      const instance = await lockInstance(client, this.options.cipher, instanceId);
      const binding = instance && (await lockBinding(client, this.options.cipher, bindingId));
      // spec: 410 Gone if the binding does not exist.
      if (!binding || binding.instance_id !== instanceId || binding.state === 'deleted') {
        throw new GoneError(`Service binding ${bindingId} does not exist.`);
      }
      const running = await activeOperations(client, this.options.cipher, instanceId);
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
          this.options.cipher,
          this.steps.newOperation(instanceId, bindingId, 'unbind', { previous_binding_state: binding.state }, options),
        ),
      };
    });
    const op = await this.steps.accepted(decision);
    if (options.acceptsIncomplete) return { status: 202, body: { operation: op.id } };
    await this.steps.completeSynchronously(op);
    return { status: 200, body: {} };
  }

  async lastBindingOperation(instanceId: string, bindingId: string, details: PollDetails): Promise<LastOperationReply> {
    const op = await bindingLastOperation(this.options.pool, instanceId, bindingId, details.operation);
    if (!op) throw new NotFoundError(`Service binding ${bindingId} does not exist.`);
    return this.steps.lastOperationReply(op);
  }

  private async existingBindingDiffers(instanceId: string, bindingId: string, details: BindRequest): Promise<boolean> {
    const existing = await getBinding(this.options.pool, this.options.cipher, bindingId);
    if (!existing || !isLive(existing.state)) return false;
    // A re-sent rotation may leave out what the new binding took over from its predecessor.
    const resentRotation =
      details.predecessor_binding_id !== undefined &&
      details.predecessor_binding_id === existing.predecessor_binding_id;
    const given = resentRotation ? inheritFrom(existing, details) : details;
    return !sameBinding(existing, bindingAttributes(instanceId, bindingId, given));
  }
}
