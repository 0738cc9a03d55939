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
import type { Catalog } from '../broker/catalog/catalog.js';
import type { InstanceRow } from '../broker/db/instances.js';
import { BrokerError } from '../broker/errors.js';
import type {
  DeleteDetails,
  LastOperationReply,
  PollDetails,
  Reply,
  RequestOptions,
  ServiceBroker,
} from '../broker/service-broker.js';
import type { FaultCounter } from './fault-counter.js';
import { planFault, type FaultKind } from './faults.js';
import { TEST_OFFERING_NAME } from './test-offering.js';

/** An instance's service and plan as stored. */
export type StoredPlan = Pick<InstanceRow, 'service_id' | 'plan_id'>;

export interface FaultInjectingBrokerOptions {
  /** The real broker, which answers everything the faults let through. */
  inner: ServiceBroker;
  catalog: Catalog;
  counter: FaultCounter;
  /** The stored service and plan of an instance, for requests that do not name them. */
  findInstance(instanceId: string): Promise<StoredPlan | undefined>;
}

/**
 * The test offering's `http` faults (TEST_OFFERING=enabled only): a request on a test plan
 * whose `x-depot.faults.<operation>` is an http fault is answered with the fault's status and
 * an OSB error body, before the real broker sees it (so nothing changes), for as many
 * attempts as the fault's `times`. Everything else goes to the real broker unchanged.
 */
export class FaultInjectingBroker implements ServiceBroker {
  constructor(private readonly options: FaultInjectingBrokerOptions) {}

  async provision(
    instanceId: string,
    details: ProvisionRequest,
    options: RequestOptions,
  ): Promise<Reply<200 | 202, ProvisionResponse | AsyncOperationResponse>> {
    this.inject('provision', details, instanceId);
    return this.options.inner.provision(instanceId, details, options);
  }

  getInstance(instanceId: string): Promise<FetchInstanceResponse> {
    return this.options.inner.getInstance(instanceId);
  }

  async update(
    instanceId: string,
    details: UpdateRequest,
    options: RequestOptions,
  ): Promise<Reply<200 | 202, Record<string, never> | AsyncOperationResponse>> {
    // The plan the request moves to, or the instance's own when it names none.
    this.inject('update', await this.planOf(instanceId, details), instanceId);
    return this.options.inner.update(instanceId, details, options);
  }

  async deprovision(
    instanceId: string,
    details: DeleteDetails,
    options: RequestOptions,
  ): Promise<Reply<202, AsyncOperationResponse>> {
    this.inject('deprovision', details, instanceId);
    return this.options.inner.deprovision(instanceId, details, options);
  }

  async lastOperation(instanceId: string, details: PollDetails): Promise<LastOperationReply> {
    this.inject('last_operation', await this.planOf(instanceId, details), instanceId);
    return this.options.inner.lastOperation(instanceId, details);
  }

  async bind(
    instanceId: string,
    bindingId: string,
    details: BindRequest,
    options: RequestOptions,
  ): Promise<Reply<200 | 201 | 202, BindResponse | AsyncOperationResponse>> {
    this.inject('bind', details, instanceId, bindingId);
    return this.options.inner.bind(instanceId, bindingId, details, options);
  }

  getBinding(instanceId: string, bindingId: string): Promise<FetchBindingResponse> {
    return this.options.inner.getBinding(instanceId, bindingId);
  }

  async unbind(
    instanceId: string,
    bindingId: string,
    details: DeleteDetails,
    options: RequestOptions,
  ): Promise<Reply<200 | 202, Record<string, never> | AsyncOperationResponse>> {
    this.inject('unbind', details, instanceId, bindingId);
    return this.options.inner.unbind(instanceId, bindingId, details, options);
  }

  async lastBindingOperation(instanceId: string, bindingId: string, details: PollDetails): Promise<LastOperationReply> {
    this.inject('last_operation', await this.planOf(instanceId, details), instanceId, bindingId);
    return this.options.inner.lastBindingOperation(instanceId, bindingId, details);
  }

  /**
   * The service and plan a request names; what it leaves out (PATCH without plan_id,
   * last_operation without the optional hints) is the instance's as stored.
   */
  private async planOf(
    instanceId: string,
    named: { service_id?: string; plan_id?: string },
  ): Promise<Partial<StoredPlan>> {
    if (named.service_id !== undefined && named.plan_id !== undefined) return named;
    if (named.service_id !== undefined && !this.isTestService(named.service_id)) return named;
    const stored = await this.options.findInstance(instanceId);
    return { service_id: named.service_id ?? stored?.service_id, plan_id: named.plan_id ?? stored?.plan_id };
  }

  /** The offering is the service's (x-depot.offering), so its first plan tells. */
  private isTestService(serviceId: string): boolean {
    const service = this.options.catalog.service(serviceId);
    const first = service?.plans[0];
    return first !== undefined && this.options.catalog.plan(serviceId, first.id)?.offering.name === TEST_OFFERING_NAME;
  }

  /** Throws the plan's http fault for this operation while it has attempts left to fail. */
  private inject(kind: FaultKind, plan: Partial<StoredPlan>, instanceId: string, bindingId?: string): void {
    if (plan.service_id === undefined || plan.plan_id === undefined) return; // the real broker answers
    const entry = this.options.catalog.plan(plan.service_id, plan.plan_id);
    if (entry?.offering.name !== TEST_OFFERING_NAME) return;
    const fault = planFault(entry.settings, kind, 'http');
    const attempt = fault && this.options.counter.fails(fault, 'http', kind, instanceId, bindingId);
    if (fault?.status !== undefined && attempt) {
      throw new BrokerError(fault.status, `injected fault: ${kind} ${fault.status} (${attempt})`);
    }
  }
}
