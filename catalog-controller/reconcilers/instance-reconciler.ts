import type { JsonObject, OriginatingIdentity, ProvisionRequest, UpdateRequest } from '../../osb/index.js';
import {
  ABANDON_ANNOTATION,
  ConditionType,
  FINALIZER,
  Reason,
  type InstanceOperation,
  type InstanceProperties,
  type ServiceBroker,
  type ServiceInstance,
  type ServiceInstanceStatus,
} from '../api/v1beta1.js';
import { userSpecifiedNames } from '../catalog-scope.js';
import { now } from '../clock.js';
import { isFailed, isReady, putCondition, removeCondition } from '../conditions.js';
import type { ControllerServices } from '../controller-services.js';
import { BY_INSTANCE } from '../informers.js';
import { Resources, objectKey } from '../kube/resources.js';
import { labelValue } from '../names.js';
import { describeOutcome, type OsbOutcome } from '../osb-client/osb-client.js';
import type { ReconcileResult } from '../work-queue.js';
import { AsyncOperations, type CreateEnds, type PendingOperation } from './async-operation.js';
import {
  Blocked,
  RETRY_TIMEOUT_MESSAGE,
  asObject,
  brokerClient,
  instanceIdOf,
  isTerminal,
  kubernetesContext,
  objectParameters,
  originatingIdentity,
  pastRetryDuration,
  planIdOf,
} from './common.js';
import { instanceOperations } from './instance-operations.js';
import {
  planChangeRefused,
  planProperties,
  resolveForDelete,
  resolveInstance,
  type Resolved,
} from './instance-resolution.js';

const R = Resources.ServiceInstance;

/**
 * ServiceInstance. The action is chosen from status: a running async
 * operation is polled; a deletion or orphan mitigation deprovisions; a provisioned instance
 * whose spec changed is updated; anything else is provisioned. The intent (currentOperation,
 * inProgressProperties, deprovisionStatus) is written before every broker call, so a restarted
 * controller resumes from status. Unlike the original, a spec edit while an operation is being
 * retried is taken up at once (the newest generation wins), and a deprovision that cannot
 * succeed can be abandoned with the `depot/abandon: "true"` annotation.
 */
export class InstanceReconciler {
  private readonly operations: AsyncOperations<InstanceOperation, ServiceInstance, ServiceInstanceStatus>;

  constructor(
    private readonly ctx: ControllerServices,
    /** Bindings waiting on an instance are looked at again when it becomes Ready. */
    private readonly onInstanceReady: (instance: ServiceInstance) => void,
  ) {
    this.operations = new AsyncOperations(
      ctx,
      instanceOperations((instance, mutate) => this.writeStatus(instance, mutate)),
    );
  }

  async reconcile(key: string): Promise<ReconcileResult | void> {
    const instance = this.ctx.informers.serviceInstances.get(key);
    if (!instance) {
      this.operations.forget(key);
      return;
    }
    const status = instance.status ?? {};
    const pending = this.operations.pendingOf(key);
    if (status.asyncOpInProgress || pending) return this.poll(instance, pending);
    if (instance.metadata.deletionTimestamp) return this.reconcileDelete(instance);
    if (status.orphanMitigationInProgress) return this.deprovision(instance, true);

    const generation = instance.metadata.generation;
    const settled = status.observedGeneration === generation && !status.currentOperation;
    if (settled && (isReady(status.conditions) || isFailed(status.conditions))) return;
    return status.provisionStatus === 'Provisioned' ? this.update(instance) : this.provision(instance);
  }

  // ---- provision ----

  private async provision(instance: ServiceInstance): Promise<ReconcileResult | void> {
    const resolved = resolveInstance(this.ctx, instance);
    if (resolved instanceof Blocked) return this.block(instance, resolved);
    if (resolved.cls.status?.removedFromBrokerCatalog) {
      return this.block(
        instance,
        new Blocked(
          Reason.ReferencesDeletedServiceClass,
          `The ${resolved.scope.class.kind} "${resolved.cls.spec.externalName}" has been deleted; cannot provision.`,
        ),
      );
    }
    if (resolved.plan.status?.removedFromBrokerCatalog) {
      return this.block(
        instance,
        new Blocked(
          Reason.ReferencesDeletedServicePlan,
          `The ${resolved.scope.plan.kind} "${resolved.plan.spec.externalName}" has been deleted; cannot provision.`,
        ),
      );
    }
    instance = await this.ensureMetadata(instance, resolved);
    const prepared = await this.prepare(instance, resolved);
    if (prepared instanceof Blocked) return this.block(instance, prepared);
    const { properties, parameters } = prepared;

    instance = await this.recordIntent(
      instance,
      'Provision',
      properties,
      Reason.ProvisionRequestInFlight,
      'Provision request for ServiceInstance in-flight to Broker',
    );
    if (pastRetryDuration(this.ctx, instance.status?.operationStartTime))
      return this.giveUp(instance, 'Provision', resolved);

    const client = await brokerClient(this.ctx, resolved.broker);
    if (client instanceof Blocked) return this.block(instance, client);
    const body: ProvisionRequest = {
      service_id: resolved.cls.spec.externalID,
      plan_id: resolved.plan.spec.externalID,
      organization_guid: await this.ctx.cluster.clusterId(),
      space_guid: await this.ctx.cluster.namespaceUid(instance.metadata.namespace!),
      context: await this.context(instance),
      ...(parameters ? { parameters } : {}),
      ...(resolved.plan.spec.maintenanceInfo ? { maintenance_info: resolved.plan.spec.maintenanceInfo } : {}),
    };
    const outcome = await client.provision(instanceIdOf(instance), body, this.identity(instance));
    return this.afterProvision(instance, resolved, outcome);
  }

  private async afterProvision(
    instance: ServiceInstance,
    resolved: Resolved,
    outcome: OsbOutcome,
  ): Promise<ReconcileResult | void> {
    const { scope, cls, broker } = resolved;
    const what =
      `Error provisioning ServiceInstance of ${scope.class.kind} (K8S: "${cls.metadata.name}" ` +
      `ExternalName: "${cls.spec.externalName}") at ${scope.broker.kind} "${broker.metadata.name}"`;
    if (outcome.kind === 'timeout') {
      return this.provisionFailed(
        instance,
        resolved.broker,
        Reason.ErrorCallingProvision,
        `Communication with the ${resolved.scope.broker.kind} timed out; operation will be retried: ${outcome.message}`,
        { orphan: true },
      );
    }
    if (outcome.kind === 'transport') {
      return this.provisionFailed(
        instance,
        resolved.broker,
        Reason.ErrorCallingProvision,
        'The provision call failed and will be retried: Error communicating with broker for provisioning: ' +
          outcome.message,
        {},
      );
    }
    const { status } = outcome;
    const body = asObject(outcome.body);
    if ((status === 200 || status === 201) && body) {
      return this.succeeded(
        instance,
        'Provision',
        typeof body.dashboard_url === 'string' ? body.dashboard_url : undefined,
      );
    }
    if (status === 202 && body) return this.accepted(instance, 'Provision', body);
    const message = `${what}: ${describeOutcome(outcome)}`;
    // spec.md, "Orphan Mitigation": a 2xx other than 200/202 that we cannot use, a 5xx, or a
    // timeout may have left an instance behind.
    const ambiguous = (status > 200 && status < 300) || status >= 500;
    if (isTerminal(outcome)) {
      return this.provisionFailed(instance, resolved.broker, Reason.ProvisionCallFailed, message, {
        terminal: true,
        failedReason: Reason.ClusterServiceBrokerReturnedFailure,
      });
    }
    return this.provisionFailed(instance, resolved.broker, Reason.ProvisionCallFailed, message, { orphan: ambiguous });
  }

  private async provisionFailed(
    instance: ServiceInstance,
    broker: ServiceBroker,
    reason: string,
    message: string,
    options: { orphan?: boolean; terminal?: boolean; failedReason?: string },
  ): Promise<ReconcileResult | void> {
    const orphan = options.orphan === true && broker.spec.disableOrphanMitigation !== true;
    await this.writeStatus(instance, (s) => {
      putCondition(s, ConditionType.Ready, 'False', reason, message);
      if (options.terminal) {
        putCondition(s, ConditionType.Failed, 'True', options.failedReason ?? reason, message);
      }
      delete s.asyncOpInProgress;
      delete s.lastOperation;
      if (orphan) {
        // processProvisionFailure: OrphanMitigation carries the original failure; a DELETE follows.
        putCondition(s, ConditionType.OrphanMitigation, 'True', reason, message);
        putCondition(
          s,
          ConditionType.Ready,
          'False',
          Reason.StartingInstanceOrphanMitigation,
          'The instance provision call failed with an ambiguous error; attempting to deprovision the instance ' +
            'in order to mitigate an orphaned resource',
        );
        s.orphanMitigationInProgress = true;
      } else if (options.terminal) {
        delete s.currentOperation;
        delete s.operationStartTime;
        delete s.inProgressProperties;
        // A provision the broker refused created nothing: deleting needs no DELETE.
        if (s.provisionStatus !== 'Provisioned') s.deprovisionStatus = 'NotRequired';
      }
    });
    if (orphan) return { requeueAfterMs: 0 };
    return options.terminal ? undefined : { backoff: true };
  }

  // ---- update ----

  private async update(instance: ServiceInstance): Promise<ReconcileResult | void> {
    const resolved = resolveInstance(this.ctx, instance);
    if (resolved instanceof Blocked) return this.block(instance, resolved);
    const status = instance.status ?? {};
    const previousPlanId = planIdOf(status.externalProperties);
    const planChanges = previousPlanId !== undefined && previousPlanId !== resolved.plan.spec.externalID;
    if (planChanges) {
      const refused = planChangeRefused(this.ctx, instance, resolved, previousPlanId);
      if (refused) return this.block(instance, refused);
    }
    instance = await this.ensureMetadata(instance, resolved);
    const prepared = await this.prepare(instance, resolved);
    if (prepared instanceof Blocked) return this.block(instance, prepared);
    const { properties, parameters } = prepared;
    instance = await this.recordIntent(
      instance,
      'Update',
      properties,
      Reason.UpdateInstanceRequestInFlight,
      'Update request for ServiceInstance in-flight to Broker',
    );
    if (pastRetryDuration(this.ctx, instance.status?.operationStartTime))
      return this.giveUp(instance, 'Update', resolved);

    const client = await brokerClient(this.ctx, resolved.broker);
    if (client instanceof Blocked) return this.block(instance, client);
    const previousChecksum = status.externalProperties?.parameterChecksum;
    const body: UpdateRequest = {
      service_id: resolved.cls.spec.externalID,
      context: await this.context(instance),
      // prepareUpdateInstanceRequest: plan_id only when it changes; parameters only when their
      // checksum does ({} when all were removed).
      ...(planChanges ? { plan_id: resolved.plan.spec.externalID } : {}),
      ...(properties.parameterChecksum !== previousChecksum ? { parameters: parameters ?? {} } : {}),
      previous_values: {
        service_id: resolved.cls.spec.externalID,
        ...(previousPlanId ? { plan_id: previousPlanId } : {}),
      },
    };
    const outcome = await client.update(instanceIdOf(instance), body, this.identity(instance));
    if (outcome.kind !== 'response') {
      const text =
        outcome.kind === 'timeout'
          ? `Communication with the ServiceBroker timed out; update will be retried: ${outcome.message}`
          : `The update call failed and will be retried: ${outcome.message}`;
      return this.retryWith(instance, Reason.ErrorCallingUpdateInstance, text);
    }
    const answer = asObject(outcome.body);
    if (outcome.status === 200 && answer) return this.succeeded(instance, 'Update', undefined);
    if (outcome.status === 202 && answer) return this.accepted(instance, 'Update', answer);
    if (isTerminal(outcome)) {
      return this.updateFailed(
        instance,
        `ServiceBroker returned a failure for update call; update will not be retried: ${describeOutcome(outcome)}`,
      );
    }
    return this.retryWith(
      instance,
      Reason.UpdateInstanceCallFailed,
      `ServiceBroker returned a failure for update call; update will be retried: ${describeOutcome(outcome)}`,
    );
  }

  private async updateFailed(instance: ServiceInstance, message: string): Promise<void> {
    await this.writeStatus(instance, (s) => {
      putCondition(s, ConditionType.Ready, 'False', Reason.UpdateInstanceCallFailed, message);
      putCondition(s, ConditionType.Failed, 'True', Reason.UpdateInstanceCallFailed, message);
      delete s.currentOperation;
      delete s.asyncOpInProgress;
      delete s.lastOperation;
      delete s.operationStartTime;
      delete s.inProgressProperties;
    });
  }

  // ---- deprovision ----

  private async reconcileDelete(instance: ServiceInstance): Promise<ReconcileResult | void> {
    if (!instance.metadata.finalizers?.includes(FINALIZER)) return;
    const status = instance.status ?? {};
    if (instance.metadata.annotations?.[ABANDON_ANNOTATION] === 'true') {
      this.ctx.events.record(
        instance,
        'Warning',
        Reason.Abandoned,
        `The instance was abandoned (annotation ${ABANDON_ANNOTATION}); the broker was not asked to deprovision it.`,
      );
      return this.removeFinalizer(instance);
    }
    const teardown = status.deprovisionStatus ?? '';
    if (teardown === '' || teardown === 'NotRequired' || teardown === 'Succeeded')
      return this.removeFinalizer(instance);
    if (teardown === 'Failed') return; // Stuck by design until abandoned; the condition says how.
    const bindings = this.ctx.informers.serviceBindings.byIndex(BY_INSTANCE, objectKey(instance.metadata));
    if (bindings.length > 0) {
      return this.block(
        instance,
        new Blocked(
          Reason.DeprovisionBlockedByExistingCredentials,
          'All associated ServiceBindings must be removed before this ServiceInstance can be deleted',
        ),
        false,
      );
    }
    return this.deprovision(instance, false);
  }

  private async deprovision(instance: ServiceInstance, orphanMitigation: boolean): Promise<ReconcileResult | void> {
    const status = instance.status ?? {};
    const resolved = resolveForDelete(this.ctx, instance);
    if (resolved instanceof Blocked) {
      await this.writeStatus(instance, (s) => {
        putCondition(
          s,
          ConditionType.Ready,
          'Unknown',
          resolved.reason,
          `${resolved.message} To give up on deprovisioning, annotate the instance with ${ABANDON_ANNOTATION}="true".`,
        );
      });
      return { backoff: true };
    }
    // prepareDeprovisionRequest: the plan of the operation in flight, else of a failed provision,
    // else what the broker has.
    const planId =
      (status.currentOperation || orphanMitigation ? planIdOf(status.inProgressProperties) : undefined) ??
      (status.provisionStatus !== 'Provisioned'
        ? resolved.plan?.spec.externalID
        : planIdOf(status.externalProperties)) ??
      planIdOf(status.externalProperties) ??
      resolved.plan?.spec.externalID;
    if (!planId) {
      return this.block(
        instance,
        new Blocked(
          Reason.ReferencesNonexistentServicePlan,
          'The instance references no plan the broker knows of; cannot deprovision.',
        ),
      );
    }
    if (!orphanMitigation && status.currentOperation !== 'Deprovision') {
      instance = await this.writeStatus(instance, (s) => {
        s.conditions = removeCondition(s.conditions, ConditionType.OrphanMitigation);
        delete s.orphanMitigationInProgress;
        s.currentOperation = 'Deprovision';
        s.operationStartTime = now();
        s.inProgressProperties = { ...planProperties(resolved.scope, planId, resolved.plan?.spec.externalName) };
        putCondition(
          s,
          ConditionType.Ready,
          'False',
          Reason.DeprovisionRequestInFlight,
          'Deprovision request for ServiceInstance in-flight to Broker',
        );
      });
    } else if (!instance.status?.operationStartTime) {
      instance = await this.writeStatus(instance, (s) => {
        s.operationStartTime = now();
      });
    }
    if (pastRetryDuration(this.ctx, instance.status?.operationStartTime)) {
      return this.operations.teardownGaveUp(instance, orphanMitigation, RETRY_TIMEOUT_MESSAGE);
    }

    const client = await brokerClient(this.ctx, resolved.broker);
    if (client instanceof Blocked) return this.block(instance, client);
    const outcome = await client.deprovision(
      instanceIdOf(instance),
      { service_id: resolved.cls.spec.externalID, plan_id: planId },
      this.identity(instance),
    );
    if (outcome.kind === 'response' && (outcome.status === 200 || outcome.status === 410)) {
      return this.operations.tornDown(instance);
    }
    if (outcome.kind === 'response' && outcome.status === 202 && asObject(outcome.body)) {
      return this.accepted(instance, 'Deprovision', asObject(outcome.body)!);
    }
    return this.operations.teardownRetry(
      instance,
      orphanMitigation,
      `Deprovision call failed; received error response from broker: ${describeOutcome(outcome)}`,
    );
  }

  private async accepted(
    instance: ServiceInstance,
    operation: InstanceOperation,
    body: JsonObject,
  ): Promise<ReconcileResult> {
    const result = this.operations.accepted(instance, operation, body);
    if (operation === 'Provision' && typeof body.dashboard_url === 'string') {
      const url = body.dashboard_url;
      await this.writeStatus(instance, (s) => {
        s.dashboardURL = url;
      });
    }
    return result;
  }

  // ---- async operations ----

  private async poll(
    instance: ServiceInstance,
    pending: PendingOperation<InstanceOperation> | undefined,
  ): Promise<ReconcileResult | void> {
    const notDue = this.operations.notDue(pending);
    if (notDue) return notDue;
    const operation = this.operations.operationOf(instance, pending);
    const resolved = resolveForDelete(this.ctx, instance);
    if (resolved instanceof Blocked) {
      await this.writeStatus(instance, (s) => {
        putCondition(s, ConditionType.Ready, 'Unknown', resolved.reason, resolved.message);
      });
      return { backoff: true };
    }
    const client = await brokerClient(this.ctx, resolved.broker);
    if (client instanceof Blocked) return this.block(instance, client);
    const status = instance.status ?? {};
    const osbOperation = this.operations.osbOperationOf(instance, pending);
    const planId = planIdOf(status.inProgressProperties) ?? planIdOf(status.externalProperties);
    const outcome = await client.instanceLastOperation(
      instanceIdOf(instance),
      {
        service_id: resolved.cls.spec.externalID,
        ...(planId ? { plan_id: planId } : {}),
        ...(osbOperation ? { operation: osbOperation } : {}),
      },
      this.identity(instance),
    );
    const maximumPollingSeconds = resolved.plan?.spec.maximumPollingDuration;
    const poll = { operation, pending, osbOperation, outcome, maximumPollingSeconds };
    return this.operations.polled(instance, poll, this.pollEnds(instance, operation, resolved.broker));
  }

  /**
   * How a polled provision or update ends. An asynchronous provision that failed, whose poll
   * was refused or that timed out is terminal for this generation, and orphan-mitigated (the
   * broker may have made part of it); an update only fails.
   */
  private pollEnds(instance: ServiceInstance, operation: InstanceOperation, broker: ServiceBroker): CreateEnds {
    const failProvision = (reason: string, message: string): Promise<ReconcileResult | void> =>
      this.provisionFailed(instance, broker, reason, message, { terminal: true, orphan: true, failedReason: reason });
    const fail = (reason: string) => (message: string) =>
      operation === 'Update' ? this.updateFailed(instance, message) : failProvision(reason, message);
    return {
      succeeded: () => this.succeeded(instance, operation, undefined),
      failed: fail(Reason.ProvisionCallFailed),
      refused: fail(Reason.ErrorPollingLastOperation),
      timedOut: fail(Reason.ErrorReconciliationRetryTimeout),
    };
  }

  // ---- outcomes shared by the operations ----

  private async succeeded(
    instance: ServiceInstance,
    operation: InstanceOperation,
    dashboardUrl: string | undefined,
  ): Promise<ReconcileResult | void> {
    this.operations.forget(objectKey(instance.metadata));
    const written = await this.writeStatus(instance, (s) => {
      const text =
        operation === 'Provision'
          ? 'The instance was provisioned successfully'
          : 'The instance was updated successfully';
      s.conditions = removeCondition(s.conditions, ConditionType.Failed);
      putCondition(
        s,
        ConditionType.Ready,
        'True',
        operation === 'Provision' ? Reason.ProvisionedSuccessfully : Reason.InstanceUpdatedSuccessfully,
        text,
      );
      if (s.inProgressProperties) s.externalProperties = s.inProgressProperties;
      delete s.inProgressProperties;
      delete s.currentOperation;
      delete s.operationStartTime;
      delete s.asyncOpInProgress;
      delete s.lastOperation;
      s.provisionStatus = 'Provisioned';
      s.deprovisionStatus = 'Required';
      s.reconciledGeneration = s.observedGeneration ?? instance.metadata.generation;
      if (dashboardUrl) s.dashboardURL = dashboardUrl;
    });
    this.onInstanceReady(written);
    // Deleted while it was being provisioned: the deprovision starts now, not at the next resync.
    if (instance.metadata.deletionTimestamp) return { requeueAfterMs: 0 };
  }

  private async retryWith(instance: ServiceInstance, reason: string, message: string): Promise<ReconcileResult> {
    await this.writeStatus(instance, (s) => {
      putCondition(s, ConditionType.Ready, 'False', reason, message);
    });
    return { backoff: true };
  }

  private async giveUp(
    instance: ServiceInstance,
    operation: InstanceOperation,
    resolved: { broker: ServiceBroker },
  ): Promise<ReconcileResult | void> {
    const message = RETRY_TIMEOUT_MESSAGE;
    if (operation === 'Update') return this.updateFailed(instance, message);
    return this.provisionFailed(instance, resolved.broker, Reason.ErrorReconciliationRetryTimeout, message, {
      terminal: true,
      failedReason: Reason.ErrorReconciliationRetryTimeout,
    });
  }

  /**
   * Writes the intent before the call: the operation, its start, what is being asked for, and
   * that a DELETE will be needed. A new generation (a spec edit while retrying) replaces the
   * recorded intent and clears a terminal Failed: the newest generation wins.
   */
  private async recordIntent(
    instance: ServiceInstance,
    operation: InstanceOperation,
    properties: InstanceProperties,
    reason: string,
    message: string,
  ): Promise<ServiceInstance> {
    const status = instance.status ?? {};
    const same =
      status.currentOperation === operation &&
      (operation !== 'Provision' || status.deprovisionStatus === 'Required') &&
      status.observedGeneration === instance.metadata.generation &&
      status.inProgressProperties?.parameterChecksum === properties.parameterChecksum &&
      planIdOf(status.inProgressProperties) === planIdOf(properties);
    if (same) return instance;
    return this.writeStatus(instance, (s) => {
      if (s.observedGeneration !== instance.metadata.generation)
        s.conditions = removeCondition(s.conditions, ConditionType.Failed);
      s.observedGeneration = instance.metadata.generation;
      if (s.currentOperation !== operation || !s.operationStartTime) s.operationStartTime = now();
      s.currentOperation = operation;
      s.inProgressProperties = properties;
      if (operation === 'Provision') {
        s.deprovisionStatus = 'Required';
        s.provisionStatus ||= 'NotProvisioned';
      }
      putCondition(s, ConditionType.Ready, 'False', reason, message);
    });
  }

  private block(instance: ServiceInstance, blocked: Blocked, retry = true): Promise<ReconcileResult | void> {
    return this.operations.block(instance, blocked, retry);
  }

  // ---- metadata and parameters ----

  /** Finalizer, class and plan refs and their lookup labels, in one write when any is missing. */
  private ensureMetadata(instance: ServiceInstance, resolved: Resolved): Promise<ServiceInstance> {
    const { scope, cls, plan } = resolved;
    const labels = {
      [scope.classRefLabel]: labelValue(cls.metadata.name),
      [scope.planRefLabel]: labelValue(plan.metadata.name),
    };
    const ok =
      instance.metadata.finalizers?.includes(FINALIZER) &&
      instance.spec.externalID &&
      instance.spec[scope.classRefField]?.name === cls.metadata.name &&
      instance.spec[scope.instancePlanRefField]?.name === plan.metadata.name &&
      Object.entries(labels).every(([k, v]) => instance.metadata.labels?.[k] === v);
    if (ok) return Promise.resolve(instance);
    return this.ctx.objects.updateObject(R, instance, (copy) => {
      if (copy.metadata.deletionTimestamp) return false;
      if (!copy.metadata.finalizers?.includes(FINALIZER))
        copy.metadata.finalizers = [...(copy.metadata.finalizers ?? []), FINALIZER];
      // The original's webhook filled externalID (the OSB instance_id) on create.
      copy.spec.externalID ||= copy.metadata.uid;
      copy.spec[scope.classRefField] = { name: cls.metadata.name };
      copy.spec[scope.instancePlanRefField] = { name: plan.metadata.name };
      copy.metadata.labels = { ...(copy.metadata.labels ?? {}), ...labels };
      return true;
    });
  }

  private async prepare(
    instance: ServiceInstance,
    resolved: Resolved,
  ): Promise<{ properties: InstanceProperties; parameters: JsonObject | undefined } | Blocked> {
    const params = await objectParameters(this.ctx, instance);
    if (params instanceof Blocked) return params;
    const properties: InstanceProperties = {
      ...planProperties(resolved.scope, resolved.plan.spec.externalID, resolved.plan.spec.externalName),
      ...(params.redacted ? { parameters: params.redacted, parameterChecksum: params.checksum } : {}),
      ...(instance.spec.userInfo ? { userInfo: instance.spec.userInfo } : {}),
    };
    return { properties, parameters: params.parameters };
  }

  private context(instance: ServiceInstance): Promise<JsonObject> {
    return kubernetesContext(this.ctx, instance.metadata.namespace, instance.metadata.name);
  }

  private identity(instance: ServiceInstance): { identity?: OriginatingIdentity } {
    return originatingIdentity(instance.spec.userInfo);
  }

  private removeFinalizer(instance: ServiceInstance): Promise<void> {
    return this.operations.removeFinalizer(instance);
  }

  private writeStatus(instance: ServiceInstance, mutate: (s: ServiceInstanceStatus) => void): Promise<ServiceInstance> {
    return this.ctx.objects.writeStatus<ServiceInstance, ServiceInstanceStatus>(R, instance, mutate, (s, object) => {
      const names = userSpecifiedNames(object);
      if (names.className) s.userSpecifiedClassName = names.className;
      if (names.planName) s.userSpecifiedPlanName = names.planName;
    });
  }

  forget(key: string): void {
    this.operations.forget(key);
  }
}
