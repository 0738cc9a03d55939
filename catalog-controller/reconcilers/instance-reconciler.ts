import type {
  JsonObject,
  LastOperationResponse,
  OriginatingIdentity,
  ProvisionRequest,
  UpdateRequest,
} from '../../osb/index.js';
import {
  ABANDON_ANNOTATION,
  ConditionType,
  FINALIZER,
  Reason,
  type InstanceOperation,
  type InstanceProperties,
  type ServiceBroker,
  type ServiceClass,
  type ServiceInstance,
  type ServiceInstanceStatus,
  type ServicePlan,
} from '../api/v1beta1.js';
import { scopeOfInstance, userSpecifiedNames, type CatalogScope } from '../catalog-scope.js';
import { findCondition, isFailed, isReady, removeCondition, setCondition } from '../conditions.js';
import { now } from '../clock.js';
import type { ControllerServices } from '../controller-services.js';
import { Resources, objectKey } from '../kube/resources.js';
import { labelValue } from '../names.js';
import { describeOutcome, type OsbOutcome } from '../osb-client/osb-client.js';
import type { ReconcileResult } from '../work-queue.js';
import {
  Blocked,
  RETRY_TIMEOUT_MESSAGE,
  acceptedOperation,
  asObject,
  brokerClient,
  instanceIdOf,
  instanceRefs,
  isTerminal,
  kubernetesContext,
  objectParameters,
  originatingIdentity,
  pastRetryDuration,
  planIdOf,
  pollDelayMs,
  removeFinalizer,
  type PendingOperation as Pending,
} from './common.js';

const R = Resources.ServiceInstance;

/** What an instance resolves to in the catalog. */
interface Resolved {
  scope: CatalogScope;
  broker: ServiceBroker;
  cls: ServiceClass;
  plan: ServicePlan;
}

type PendingOperation = Pending<InstanceOperation>;

/**
 * ServiceInstance (reference §2.3). The action is chosen from status: a running async
 * operation is polled; a deletion or orphan mitigation deprovisions; a provisioned instance
 * whose spec changed is updated; anything else is provisioned. The intent (currentOperation,
 * inProgressProperties, deprovisionStatus) is written before every broker call, so a restarted
 * controller resumes from status. Unlike the original, a spec edit while an operation is being
 * retried is taken up at once (the newest generation wins), and a deprovision that cannot
 * succeed can be abandoned with the `depot/abandon: "true"` annotation.
 */
export class InstanceReconciler {
  private readonly pending = new Map<string, PendingOperation>();

  constructor(
    private readonly ctx: ControllerServices,
    /** Bindings waiting on an instance are looked at again when it becomes Ready. */
    private readonly onInstanceReady: (instance: ServiceInstance) => void,
  ) {}

  async reconcile(key: string): Promise<ReconcileResult | void> {
    const instance = this.ctx.informers.serviceInstances.get(key);
    if (!instance) {
      this.pending.delete(key);
      return;
    }
    const status = instance.status ?? {};
    const pending = this.pending.get(key);
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
    const resolved = this.resolve(instance);
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
    const what = `Error provisioning ServiceInstance of ${resolved.scope.class.kind} (K8S: "${resolved.cls.metadata.name}" ExternalName: "${resolved.cls.spec.externalName}") at ${resolved.scope.broker.kind} "${resolved.broker.metadata.name}"`;
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
        `The provision call failed and will be retried: Error communicating with broker for provisioning: ${outcome.message}`,
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
    instance = await this.writeStatus(instance, (s) => {
      s.conditions = setCondition(s.conditions, ConditionType.Ready, 'False', reason, message, now());
      if (options.terminal) {
        s.conditions = setCondition(
          s.conditions,
          ConditionType.Failed,
          'True',
          options.failedReason ?? reason,
          message,
          now(),
        );
      }
      delete s.asyncOpInProgress;
      delete s.lastOperation;
      if (orphan) {
        // processProvisionFailure: OrphanMitigation carries the original failure; a DELETE follows.
        s.conditions = setCondition(
          s.conditions,
          ConditionType.OrphanMitigation,
          'True',
          reason,
          message,
          now(),
        );
        s.conditions = setCondition(
          s.conditions,
          ConditionType.Ready,
          'False',
          Reason.StartingInstanceOrphanMitigation,
          'The instance provision call failed with an ambiguous error; attempting to deprovision the instance in order to mitigate an orphaned resource',
          now(),
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
    const resolved = this.resolve(instance);
    if (resolved instanceof Blocked) return this.block(instance, resolved);
    const status = instance.status ?? {};
    const previousPlanId = planIdOf(status.externalProperties);
    const planChanges = previousPlanId !== undefined && previousPlanId !== resolved.plan.spec.externalID;
    if (planChanges) {
      if (resolved.plan.status?.removedFromBrokerCatalog) {
        return this.block(
          instance,
          new Blocked(
            Reason.ReferencesDeletedServicePlan,
            `The ${resolved.scope.plan.kind} "${resolved.plan.spec.externalName}" has been deleted; cannot change to it.`,
          ),
        );
      }
      // spec: the current plan's plan_updateable overrides its class's. Cluster plans have no
      // namespace; namespaced ones are looked up in the instance's.
      const { scope, cls } = resolved;
      const currentPlan = this.ctx
        .informerOf<ServicePlan>(scope.plan)
        .list(scope.cluster ? undefined : instance.metadata.namespace)
        .find(
          (p) =>
            p.spec.externalID === previousPlanId &&
            p.spec[scope.classRefField]?.name === cls.metadata.name &&
            p.spec[scope.brokerNameField] === cls.spec[scope.brokerNameField],
        );
      const updatable = currentPlan?.spec.planUpdatable ?? cls.spec.planUpdatable ?? false;
      if (!updatable) {
        return this.block(
          instance,
          new Blocked(
            Reason.PlanChangeNotAllowed,
            `The Service Class ${resolved.cls.spec.externalName} does not allow plan changes.`,
            true,
          ),
        );
      }
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
      s.conditions = setCondition(
        s.conditions,
        ConditionType.Ready,
        'False',
        Reason.UpdateInstanceCallFailed,
        message,
        now(),
      );
      s.conditions = setCondition(
        s.conditions,
        ConditionType.Failed,
        'True',
        Reason.UpdateInstanceCallFailed,
        message,
        now(),
      );
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
    const bindings = this.ctx.informers.serviceBindings
      .list(instance.metadata.namespace)
      .filter((b) => b.spec.instanceRef?.name === instance.metadata.name);
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
    const resolved = this.resolveForDelete(instance);
    if (resolved instanceof Blocked) {
      await this.writeStatus(instance, (s) => {
        s.conditions = setCondition(
          s.conditions,
          ConditionType.Ready,
          'Unknown',
          resolved.reason,
          `${resolved.message} To give up on deprovisioning, annotate the instance with ${ABANDON_ANNOTATION}="true".`,
          now(),
        );
      });
      return { backoff: true };
    }
    // prepareDeprovisionRequest: the plan of the operation in flight, else of a failed provision, else what the broker has.
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
        s.conditions = setCondition(
          s.conditions,
          ConditionType.Ready,
          'False',
          Reason.DeprovisionRequestInFlight,
          'Deprovision request for ServiceInstance in-flight to Broker',
          now(),
        );
      });
    } else if (!instance.status?.operationStartTime) {
      instance = await this.writeStatus(instance, (s) => {
        s.operationStartTime = now();
      });
    }
    if (pastRetryDuration(this.ctx, instance.status?.operationStartTime))
      return this.deprovisionGaveUp(instance, orphanMitigation, RETRY_TIMEOUT_MESSAGE);

    const client = await brokerClient(this.ctx, resolved.broker);
    if (client instanceof Blocked) return this.block(instance, client);
    const outcome = await client.deprovision(
      instanceIdOf(instance),
      { service_id: resolved.cls.spec.externalID, plan_id: planId },
      this.identity(instance),
    );
    if (outcome.kind === 'response' && (outcome.status === 200 || outcome.status === 410))
      return this.deprovisioned(instance);
    if (outcome.kind === 'response' && outcome.status === 202 && asObject(outcome.body)) {
      return this.accepted(instance, 'Deprovision', asObject(outcome.body)!);
    }
    return this.deprovisionRetry(
      instance,
      orphanMitigation,
      `Deprovision call failed; received error response from broker: ${describeOutcome(outcome)}`,
    );
  }

  private async deprovisionRetry(
    instance: ServiceInstance,
    orphanMitigation: boolean,
    message: string,
  ): Promise<ReconcileResult> {
    await this.writeStatus(instance, (s) => {
      s.conditions = setCondition(
        s.conditions,
        ConditionType.Ready,
        'Unknown',
        Reason.DeprovisionCallFailed,
        message,
        now(),
      );
      delete s.asyncOpInProgress;
      delete s.lastOperation;
      if (orphanMitigation) s.orphanMitigationInProgress = true;
    });
    return { backoff: true };
  }

  private async deprovisionGaveUp(
    instance: ServiceInstance,
    orphanMitigation: boolean,
    message: string,
  ): Promise<void> {
    await this.writeStatus(instance, (s) => {
      const hint = instance.metadata.deletionTimestamp
        ? ` To remove the instance anyway, annotate it with ${ABANDON_ANNOTATION}="true".`
        : '';
      s.conditions = setCondition(
        s.conditions,
        ConditionType.Ready,
        'Unknown',
        orphanMitigation ? Reason.OrphanMitigationFailed : Reason.DeprovisionCallFailed,
        `${orphanMitigation ? 'Orphan mitigation failed: ' : ''}${message}.${hint}`,
        now(),
      );
      s.conditions = setCondition(
        s.conditions,
        ConditionType.Failed,
        'True',
        Reason.ErrorReconciliationRetryTimeout,
        `${message}.${hint}`,
        now(),
      );
      s.deprovisionStatus = 'Failed';
      delete s.orphanMitigationInProgress;
      delete s.asyncOpInProgress;
      delete s.lastOperation;
      delete s.currentOperation;
    });
  }

  private async deprovisioned(instance: ServiceInstance): Promise<ReconcileResult | void> {
    const orphanMitigation = instance.status?.orphanMitigationInProgress === true;
    this.pending.delete(objectKey(instance.metadata));
    if (!orphanMitigation && instance.metadata.deletionTimestamp) {
      this.ctx.events.record(
        instance,
        'Normal',
        Reason.DeprovisionedSuccessfully,
        'The instance was deprovisioned successfully',
      );
      return this.removeFinalizer(instance);
    }
    const written = await this.writeStatus(instance, (s) => {
      const text = orphanMitigation
        ? 'Orphan mitigation was completed successfully'
        : 'The instance was deprovisioned successfully';
      s.conditions = removeCondition(s.conditions, ConditionType.OrphanMitigation);
      s.conditions = setCondition(
        s.conditions,
        ConditionType.Ready,
        'False',
        orphanMitigation ? Reason.OrphanMitigationSuccessful : Reason.DeprovisionedSuccessfully,
        text,
        now(),
      );
      s.provisionStatus = 'NotProvisioned';
      s.deprovisionStatus = 'Succeeded';
      delete s.orphanMitigationInProgress;
      delete s.asyncOpInProgress;
      delete s.lastOperation;
      delete s.externalProperties;
      // A retriable failure keeps its operation and its start, so provision → orphan
      // mitigation → provision still ends at the retry duration (ErrorReconciliationRetryTimeout).
      if (!orphanMitigation || isFailed(s.conditions)) {
        delete s.currentOperation;
        delete s.operationStartTime;
        delete s.inProgressProperties;
      }
    });
    // A retriable failure provisions again, behind the key's growing backoff (no flood).
    if (written.metadata.deletionTimestamp) return { requeueAfterMs: 0 };
    return isFailed(written.status?.conditions) ? undefined : { backoff: true };
  }

  // ---- async operations ----

  private async accepted(
    instance: ServiceInstance,
    operation: InstanceOperation,
    body: JsonObject,
  ): Promise<ReconcileResult> {
    this.pending.set(objectKey(instance.metadata), acceptedOperation(this.ctx, operation, body));
    if (operation === 'Provision' && typeof body.dashboard_url === 'string') {
      const url = body.dashboard_url;
      await this.writeStatus(instance, (s) => {
        s.dashboardURL = url;
      });
    }
    return { requeueAfterMs: this.ctx.config.pollInitialDelayMs };
  }

  private async poll(
    instance: ServiceInstance,
    pending: PendingOperation | undefined,
  ): Promise<ReconcileResult | void> {
    const key = objectKey(instance.metadata);
    const status = instance.status ?? {};
    // Events (our own status writes among them) do not make polls come sooner than planned.
    if (pending && Date.now() < pending.dueAt) return { requeueAfterMs: pending.dueAt - Date.now() };
    const operation: InstanceOperation =
      pending?.operation ??
      (status.orphanMitigationInProgress ? 'Deprovision' : status.currentOperation || 'Provision');
    const deleting = operation === 'Deprovision';
    const orphanMitigation = status.orphanMitigationInProgress === true;
    const resolved = this.resolveForDelete(instance);
    if (resolved instanceof Blocked) {
      await this.writeStatus(instance, (s) => {
        s.conditions = setCondition(
          s.conditions,
          ConditionType.Ready,
          'Unknown',
          resolved.reason,
          resolved.message,
          now(),
        );
      });
      return { backoff: true };
    }
    const client = await brokerClient(this.ctx, resolved.broker);
    if (client instanceof Blocked) return this.block(instance, client);
    const osbOperation = pending?.osbOperation ?? status.lastOperation;
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

    // spec.md, "Polling Last Operation": 410 Gone means the instance is gone, a success while deprovisioning.
    if (deleting && outcome.kind === 'response' && outcome.status === 410) return this.deprovisioned(instance);
    const answer =
      outcome.kind === 'response' && outcome.status === 200
        ? (asObject(outcome.body) as LastOperationResponse | undefined)
        : undefined;
    if (answer?.state === 'succeeded') {
      this.pending.delete(key);
      if (deleting) return this.deprovisioned(instance);
      return this.succeeded(instance, operation, undefined);
    }
    if (answer?.state === 'failed') {
      this.pending.delete(key);
      const description = answer.description ?? 'the broker gave no description';
      if (deleting) return this.deprovisionRetry(instance, orphanMitigation, `Deprovision call failed: ${description}`);
      if (operation === 'Update') return this.updateFailed(instance, `Update call failed: ${description}`);
      // PR #2520: an async provision that failed is terminal for this generation, and orphan-mitigated.
      return this.provisionFailed(
        instance,
        resolved.broker,
        Reason.ProvisionCallFailed,
        `Provision call failed: ${description}`,
        {
          terminal: true,
          orphan: true,
          failedReason: Reason.ProvisionCallFailed,
        },
      );
    }

    // Still running, or the poll itself failed.
    const polls = (pending?.polls ?? 0) + 1;
    if (outcome.kind === 'response' && outcome.status === 400 && !deleting) {
      this.pending.delete(key);
      const message = `Error polling last operation: ${describeOutcome(outcome)}`;
      if (operation === 'Update') return this.updateFailed(instance, message);
      return this.provisionFailed(instance, resolved.broker, Reason.ErrorPollingLastOperation, message, {
        terminal: true,
        orphan: true,
        failedReason: Reason.ErrorPollingLastOperation,
      });
    }
    const inProgress = answer?.state === 'in progress';
    const maxPolling = resolved.plan?.spec.maximumPollingDuration;
    const started = Date.parse(status.operationStartTime ?? '') || Date.now();
    const overMaxPolling = maxPolling !== undefined && Date.now() - started > maxPolling * 1000;
    if (overMaxPolling || pastRetryDuration(this.ctx, status.operationStartTime)) {
      this.pending.delete(key);
      const message = overMaxPolling
        ? `The operation did not finish within the plan's maximum_polling_duration of ${maxPolling} s`
        : RETRY_TIMEOUT_MESSAGE;
      if (deleting) return this.deprovisionGaveUp(instance, orphanMitigation, message);
      if (operation === 'Update') return this.updateFailed(instance, message);
      return this.provisionFailed(instance, resolved.broker, Reason.ErrorReconciliationRetryTimeout, message, {
        terminal: true,
        orphan: true,
        failedReason: Reason.ErrorReconciliationRetryTimeout,
      });
    }
    const reason = inProgress ? progressReason(operation) : Reason.ErrorPollingLastOperation;
    const base = inProgress ? progressMessage(operation) : `Error polling last operation: ${describeOutcome(outcome)}`;
    const message = inProgress && answer?.description ? `${base} (${answer.description})` : base;
    const current = findCondition(status.conditions, ConditionType.Ready);
    // The async operation is written to status once (so a restart resumes polling), and again
    // only when the broker's description changes.
    if (!status.asyncOpInProgress || current?.reason !== reason || current.message !== message) {
      await this.writeStatus(instance, (s) => {
        s.asyncOpInProgress = true;
        if (osbOperation) s.lastOperation = osbOperation;
        else delete s.lastOperation;
        if (deleting && !orphanMitigation) s.currentOperation = 'Deprovision';
        s.conditions = setCondition(
          s.conditions,
          ConditionType.Ready,
          deleting && !inProgress ? 'Unknown' : 'False',
          reason,
          message,
          now(),
        );
      });
    }
    const delay = pollDelayMs(this.ctx, outcome, polls);
    this.pending.set(key, { operation, osbOperation, polls, dueAt: Date.now() + delay });
    return { requeueAfterMs: delay };
  }

  // ---- outcomes shared by the operations ----

  private async succeeded(
    instance: ServiceInstance,
    operation: InstanceOperation,
    dashboardUrl: string | undefined,
  ): Promise<void> {
    this.pending.delete(objectKey(instance.metadata));
    const written = await this.writeStatus(instance, (s) => {
      const text =
        operation === 'Provision'
          ? 'The instance was provisioned successfully'
          : 'The instance was updated successfully';
      s.conditions = removeCondition(s.conditions, ConditionType.Failed);
      s.conditions = setCondition(
        s.conditions,
        ConditionType.Ready,
        'True',
        operation === 'Provision' ? Reason.ProvisionedSuccessfully : Reason.InstanceUpdatedSuccessfully,
        text,
        now(),
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
  }

  private async retryWith(instance: ServiceInstance, reason: string, message: string): Promise<ReconcileResult> {
    await this.writeStatus(instance, (s) => {
      s.conditions = setCondition(s.conditions, ConditionType.Ready, 'False', reason, message, now());
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
      s.conditions = setCondition(s.conditions, ConditionType.Ready, 'False', reason, message, now());
    });
  }

  private async block(instance: ServiceInstance, blocked: Blocked, retry = true): Promise<ReconcileResult | void> {
    await this.writeStatus(instance, (s) => {
      s.conditions = setCondition(
        s.conditions,
        ConditionType.Ready,
        'False',
        blocked.reason,
        blocked.message,
        now(),
      );
      if (blocked.terminal) {
        s.conditions = setCondition(
          s.conditions,
          ConditionType.Failed,
          'True',
          blocked.reason,
          blocked.message,
          now(),
        );
        s.observedGeneration = instance.metadata.generation;
        delete s.currentOperation;
        delete s.inProgressProperties;
        delete s.operationStartTime;
      }
    });
    if (blocked.terminal || !retry) return;
    return { backoff: true };
  }

  // ---- resolution ----

  /** Class, plan and broker from the spec, as the original's webhook and controller did together. */
  private resolve(instance: ServiceInstance): Resolved | Blocked {
    const scope = scopeOfInstance(instance);
    if ('invalid' in scope) return new Blocked(Reason.InvalidSpec, scope.invalid, true);
    const spec = instance.spec;
    const f = scope.specFields;
    const namespace = scope.cluster ? undefined : instance.metadata.namespace;
    const classes = this.ctx.informerOf<ServiceClass>(scope.class).list(namespace);
    const classByName = spec[f.className] as string | undefined;
    const classByExternalName = spec[f.classExternalName] as string | undefined;
    const classByExternalId = spec[f.classExternalID] as string | undefined;
    const given = [classByName, classByExternalName, classByExternalId].filter((v) => v).length;
    if (given > 1)
      return new Blocked(
        Reason.InvalidSpec,
        'spec must name the class exactly one way: by external name, external id or Kubernetes name',
        true,
      );
    const found = classByName
      ? classes.filter((c) => c.metadata.name === classByName)
      : classByExternalName
        ? classes.filter((c) => c.spec.externalName === classByExternalName)
        : classes.filter((c) => c.spec.externalID === classByExternalId);
    const asked = classByName ?? classByExternalName ?? classByExternalId;
    if (found.length !== 1) {
      return new Blocked(
        Reason.ReferencesNonexistentServiceClass,
        `The instance references a ${scope.class.kind} that does not exist. References a non-existent ${scope.class.kind} "${asked}" or there is more than one (found: ${found.length})`,
      );
    }
    const cls = found[0]!;
    const brokerName = cls.spec[scope.brokerNameField];
    const broker = brokerName
      ? this.ctx.informerOf<ServiceBroker>(scope.broker).get(namespace ? `${namespace}/${brokerName}` : brokerName)
      : undefined;
    if (!broker) {
      return new Blocked(
        Reason.ReferencesNonexistentBroker,
        `The instance references a non-existent broker "${brokerName}" (through ${scope.class.kind} "${cls.metadata.name}")`,
      );
    }
    const plans = this.ctx
      .informerOf<ServicePlan>(scope.plan)
      .list(namespace)
      .filter(
        (p) => p.spec[scope.classRefField]?.name === cls.metadata.name && p.spec[scope.brokerNameField] === brokerName,
      );
    const planByName = spec[f.planName] as string | undefined;
    const planByExternalName = spec[f.planExternalName] as string | undefined;
    const planByExternalId = spec[f.planExternalID] as string | undefined;
    // The plan is named the same way as the class (validation of PlanReference).
    const planAsked = classByName ? planByName : classByExternalName ? planByExternalName : planByExternalId;
    const otherWays = [planByName, planByExternalName, planByExternalId].filter((v) => v && v !== planAsked).length;
    if (otherWays > 0)
      return new Blocked(
        Reason.InvalidSpec,
        'spec must name the plan the same way as the class (external name, external id or Kubernetes name)',
        true,
      );
    let plan: ServicePlan | undefined;
    if (planAsked === undefined) {
      // The default plan: only when the class has exactly one.
      const live = plans.filter((p) => !p.status?.removedFromBrokerCatalog);
      if (live.length !== 1) {
        return new Blocked(
          Reason.ReferencesNonexistentServicePlan,
          `No plan given and ${scope.class.kind} "${cls.spec.externalName}" has ${live.length} plans; name one with ${String(f.planExternalName)}`,
        );
      }
      plan = live[0];
    } else {
      const matching = plans.filter((p) =>
        classByName
          ? p.metadata.name === planAsked
          : classByExternalName
            ? p.spec.externalName === planAsked
            : p.spec.externalID === planAsked,
      );
      if (matching.length !== 1) {
        return new Blocked(
          Reason.ReferencesNonexistentServicePlan,
          `The instance references a ${scope.plan.kind} that does not exist. References a non-existent ${scope.plan.kind} "${planAsked}" of ${scope.class.kind} "${cls.spec.externalName}" or there is more than one (found: ${matching.length})`,
        );
      }
      plan = matching[0];
    }
    return { scope, broker, cls, plan: plan! };
  }

  /** For delete and poll: the class and broker through the refs the controller recorded; the plan if it still exists. */
  private resolveForDelete(instance: ServiceInstance): (Omit<Resolved, 'plan'> & { plan?: ServicePlan }) | Blocked {
    const refs = instanceRefs(this.ctx, instance);
    if ('invalid' in refs) return new Blocked(Reason.InvalidSpec, refs.invalid);
    if (!refs.cls) {
      const resolved = this.resolve(instance);
      if (resolved instanceof Blocked)
        return new Blocked(
          Reason.ReferencesNonexistentServiceClass,
          `The instance references a ${refs.scope.class.kind} that does not exist: ${resolved.message}`,
        );
      return resolved;
    }
    if (!refs.broker)
      return new Blocked(
        Reason.ReferencesNonexistentBroker,
        `The instance references a non-existent broker "${refs.brokerName}"`,
      );
    return { scope: refs.scope, broker: refs.broker, cls: refs.cls, ...(refs.plan ? { plan: refs.plan } : {}) };
  }

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
    this.pending.delete(objectKey(instance.metadata));
    return removeFinalizer(this.ctx, R, instance);
  }

  private writeStatus(instance: ServiceInstance, mutate: (s: ServiceInstanceStatus) => void): Promise<ServiceInstance> {
    return this.ctx.objects.writeStatus<ServiceInstance, ServiceInstanceStatus>(R, instance, mutate, (s, object) => {
      const names = userSpecifiedNames(object);
      if (names.className) s.userSpecifiedClassName = names.className;
      if (names.planName) s.userSpecifiedPlanName = names.planName;
    });
  }

  forget(key: string): void {
    this.pending.delete(key);
  }
}

function planProperties(scope: CatalogScope, planId: string, planName: string | undefined): InstanceProperties {
  return scope.cluster
    ? { clusterServicePlanExternalID: planId, ...(planName ? { clusterServicePlanExternalName: planName } : {}) }
    : { servicePlanExternalID: planId, ...(planName ? { servicePlanExternalName: planName } : {}) };
}

function progressReason(operation: InstanceOperation): string {
  return operation === 'Provision'
    ? Reason.Provisioning
    : operation === 'Update'
      ? Reason.UpdatingInstance
      : Reason.Deprovisioning;
}

function progressMessage(operation: InstanceOperation): string {
  return operation === 'Provision'
    ? 'The instance is being provisioned asynchronously'
    : operation === 'Update'
      ? 'The instance is being updated asynchronously'
      : 'The instance is being deprovisioned asynchronously';
}
