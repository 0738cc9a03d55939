import {
  FEATURE_SINCE,
  type ApiMinor,
  type BindRequest,
  type JsonObject,
  type LastOperationResponse,
  type OriginatingIdentity,
} from '../../osb/index.js';
import {
  ABANDON_ANNOTATION,
  API_VERSION,
  ConditionType,
  FINALIZER,
  Reason,
  type BindingOperation,
  type BindingProperties,
  type Secret,
  type ServiceBinding,
  type ServiceBindingStatus,
  type ServiceBroker,
  type ServiceClass,
  type ServiceInstance,
  type ServicePlan,
} from '../api/v1beta1.js';
import { findCondition, isFailed, isReady, removeCondition, setCondition } from '../conditions.js';
import { now } from '../clock.js';
import type { ControllerServices } from '../controller-services.js';
import { MANAGED_BY, MANAGED_BY_LABEL } from '../informers.js';
import { KubeApiError } from '../kube/kube-client.js';
import { Resources, objectKey } from '../kube/resources.js';
import { describeOutcome, type OsbClient, type OsbOutcome } from '../osb-client/osb-client.js';
import { SecretTransformError, secretData, transformCredentials } from '../secret-data.js';
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

const R = Resources.ServiceBinding;

/** What a binding needs from its instance to talk to the broker. */
interface Target {
  instance: ServiceInstance;
  broker: ServiceBroker;
  cls: ServiceClass;
  plan: ServicePlan | undefined;
  serviceId: string;
  planId: string;
}

type PendingOperation = Pending<BindingOperation>;

/** Injection into the Secret failed in a way a retry may fix. */
class InjectionError extends Error {
  override name = 'InjectionError';
}

/**
 * ServiceBinding (reference §2.4). Waits for its instance to be Ready, binds (asynchronously
 * when the service has bindings_retrievable), and writes the credentials to the Secret
 * `spec.secretName` (default: the binding's name), owned by the binding. The Secret is kept:
 * a deleted one is written again; one owned by someone else is never overwritten. The binding
 * is also a servicebinding.io Provisioned Service (`status.binding.name`; keys `type` and
 * `provider`). Delete: the Secret, then the unbind, then the finalizer.
 */
export class BindingReconciler {
  private readonly pending = new Map<string, PendingOperation>();

  constructor(private readonly ctx: ControllerServices) {}

  async reconcile(key: string): Promise<ReconcileResult | void> {
    const binding = this.ctx.informers.serviceBindings.get(key);
    if (!binding) {
      this.pending.delete(key);
      return;
    }
    const status = binding.status ?? {};
    const pending = this.pending.get(key);
    if (status.asyncOpInProgress || pending) return this.poll(binding, pending);
    if (binding.metadata.deletionTimestamp) return this.reconcileDelete(binding);
    if (status.orphanMitigationInProgress) return this.unbind(binding, true);
    const current = status.observedGeneration === binding.metadata.generation && !status.currentOperation;
    if (current && isFailed(status.conditions)) return;
    if (current && isReady(status.conditions)) return this.keepSecret(binding);
    return this.bind(binding);
  }

  // ---- bind ----

  private async bind(binding: ServiceBinding): Promise<ReconcileResult | void> {
    // What the original's webhook refused: a Secret name the API server would refuse later,
    // after the broker had already bound.
    const secretName = secretNameOf(binding);
    if (
      secretName.length > 253 ||
      !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(secretName)
    ) {
      return this.block(
        binding,
        new Blocked(
          Reason.InvalidSpec,
          `spec.secretName "${secretName}" is not a valid Secret name (lowercase letters, digits, "-" and ".", at most 253 characters)`,
          true,
        ),
      );
    }
    const target = this.target(binding, true);
    if (target instanceof Blocked) return this.block(binding, target);
    const bindable = target.plan?.spec.bindable ?? target.cls.spec.bindable;
    if (!bindable) {
      return this.block(
        binding,
        new Blocked(
          Reason.ErrorNonbindableServiceClass,
          `References a non-bindable ${target.cls.kind} (K8S: "${target.cls.metadata.name}" ExternalName: "${target.cls.spec.externalName}") and Plan ("${target.plan?.spec.externalName ?? target.planId}") combination`,
          true,
        ),
      );
    }
    if (!binding.metadata.finalizers?.includes(FINALIZER) || !binding.spec.externalID || !binding.spec.secretName) {
      // What the original's webhook set on create: the finalizer, externalID and secretName.
      binding = await this.ctx.objects.updateObject(R, binding, (copy) => {
        if (copy.metadata.deletionTimestamp) return false;
        if (!copy.metadata.finalizers?.includes(FINALIZER))
          copy.metadata.finalizers = [...(copy.metadata.finalizers ?? []), FINALIZER];
        copy.spec.externalID ||= copy.metadata.uid;
        copy.spec.secretName ||= copy.metadata.name;
        return true;
      });
    }
    const resolved = await objectParameters(this.ctx, binding);
    if (resolved instanceof Blocked) return this.block(binding, resolved);
    const parameters = resolved.parameters;
    const properties: BindingProperties = {
      ...(resolved.redacted ? { parameters: resolved.redacted, parameterChecksum: resolved.checksum } : {}),
      ...(binding.spec.userInfo ? { userInfo: binding.spec.userInfo } : {}),
    };

    const status = binding.status ?? {};
    if (
      status.currentOperation !== 'Bind' ||
      status.observedGeneration !== binding.metadata.generation ||
      status.inProgressProperties?.parameterChecksum !== properties.parameterChecksum
    ) {
      binding = await this.writeStatus(binding, (s) => {
        if (s.observedGeneration !== binding.metadata.generation)
          s.conditions = removeCondition(s.conditions, ConditionType.Failed);
        s.observedGeneration = binding.metadata.generation;
        s.currentOperation = 'Bind';
        s.operationStartTime = now();
        s.inProgressProperties = properties;
        s.unbindStatus = 'Required';
        s.conditions = setCondition(
          s.conditions,
          ConditionType.Ready,
          'False',
          Reason.BindingRequestInFlight,
          'Binding request for ServiceBinding in-flight to Broker',
          now(),
        );
      });
    }
    if (pastRetryDuration(this.ctx, binding.status?.operationStartTime))
      return this.bindFailed(binding, target, Reason.ErrorReconciliationRetryTimeout, RETRY_TIMEOUT_MESSAGE, false);

    const client = await brokerClient(this.ctx, target.broker);
    if (client instanceof Blocked) return this.block(binding, client);
    const body = await this.bindRequest(binding, target, parameters);
    const acceptsIncomplete = asyncBindings(target, client);
    const outcome = await client.bind(
      instanceIdOf(target.instance),
      bindingId(binding),
      body,
      acceptsIncomplete,
      this.identity(binding),
    );
    return this.afterBind(binding, target, outcome);
  }

  private async afterBind(
    binding: ServiceBinding,
    target: Target,
    outcome: OsbOutcome,
  ): Promise<ReconcileResult | void> {
    if (outcome.kind === 'timeout') {
      return this.bindFailed(
        binding,
        target,
        Reason.BindCallFailed,
        `Communication with the ServiceBroker timed out; Bind operation will not be retried: ${outcome.message}`,
        true,
      );
    }
    if (outcome.kind === 'transport') {
      await this.writeStatus(binding, (s) => {
        s.conditions = setCondition(
          s.conditions,
          ConditionType.Ready,
          'False',
          Reason.BindCallFailed,
          `Error creating ServiceBinding for ServiceInstance "${target.instance.metadata.name}": ${outcome.message}`,
          now(),
        );
      });
      return { backoff: true };
    }
    const body = asObject(outcome.body);
    if ((outcome.status === 200 || outcome.status === 201) && body) return this.inject(binding, target, body);
    if (outcome.status === 202 && body) {
      this.pending.set(objectKey(binding.metadata), acceptedOperation(this.ctx, 'Bind', body));
      return { requeueAfterMs: this.ctx.config.pollInitialDelayMs };
    }
    const message = `ServiceBroker returned failure; bind operation will not be retried: ${describeOutcome(outcome)}`;
    // Any HTTP error is terminal for this generation; a non-200 2xx or a 5xx may have left a binding behind.
    const ambiguous = outcome.status >= 500 || (outcome.status > 200 && outcome.status < 300);
    if (!isTerminal(outcome) && !ambiguous) {
      // 401, 403, 404, 408, 429, 3xx: the request may succeed later (auth fixed, broker back).
      await this.writeStatus(binding, (s) => {
        s.conditions = setCondition(
          s.conditions,
          ConditionType.Ready,
          'False',
          Reason.BindCallFailed,
          `ServiceBroker returned failure; bind will be retried: ${describeOutcome(outcome)}`,
          now(),
        );
      });
      return { backoff: true };
    }
    return this.bindFailed(binding, target, Reason.ServiceBindingReturnedFailure, message, ambiguous);
  }

  private async bindFailed(
    binding: ServiceBinding,
    target: Target | undefined,
    failedReason: string,
    message: string,
    orphan: boolean,
  ): Promise<ReconcileResult | void> {
    const mitigate = orphan && target?.broker.spec.disableOrphanMitigation !== true;
    await this.writeStatus(binding, (s) => {
      s.conditions = setCondition(
        s.conditions,
        ConditionType.Ready,
        'False',
        mitigate ? Reason.ServiceBindingNeedsOrphanMitigation : Reason.BindCallFailed,
        mitigate ? 'Starting orphan mitigation' : message,
        now(),
      );
      s.conditions = setCondition(s.conditions, ConditionType.Failed, 'True', failedReason, message, now());
      delete s.asyncOpInProgress;
      delete s.lastOperation;
      if (mitigate) s.orphanMitigationInProgress = true;
      else {
        delete s.currentOperation;
        delete s.operationStartTime;
        delete s.inProgressProperties;
        s.unbindStatus = 'NotRequired';
      }
    });
    return mitigate ? { requeueAfterMs: 0 } : undefined;
  }

  /** The bind result into the Secret, then Ready. */
  private async inject(binding: ServiceBinding, target: Target, response: JsonObject): Promise<ReconcileResult | void> {
    this.pending.delete(objectKey(binding.metadata));
    const credentials = asObject(response.credentials) ?? {};
    try {
      await this.writeSecret(binding, target, credentials);
    } catch (error) {
      // injectServiceBinding: any failure to write the Secret (also one the API refuses: a key
      // or name that is not valid) is ErrorInjectingBindResult, retried; not a silent log line.
      if (error instanceof InjectionError || error instanceof SecretTransformError || error instanceof KubeApiError) {
        await this.writeStatus(binding, (s) => {
          s.conditions = setCondition(
            s.conditions,
            ConditionType.Ready,
            'False',
            Reason.ErrorInjectingBindResult,
            `Error injecting bind result: ${error.message}`,
            now(),
          );
          delete s.asyncOpInProgress;
          delete s.lastOperation;
        });
        return { backoff: true };
      }
      throw error;
    }
    await this.writeStatus(binding, (s) => {
      s.conditions = removeCondition(s.conditions, ConditionType.Failed);
      s.conditions = setCondition(
        s.conditions,
        ConditionType.Ready,
        'True',
        Reason.InjectedBindResult,
        'Injected bind result',
        now(),
      );
      if (s.inProgressProperties) s.externalProperties = s.inProgressProperties;
      delete s.inProgressProperties;
      delete s.currentOperation;
      delete s.operationStartTime;
      delete s.asyncOpInProgress;
      delete s.lastOperation;
      s.reconciledGeneration = binding.metadata.generation;
      s.observedGeneration = binding.metadata.generation;
      s.unbindStatus = 'Required';
      s.binding = { name: secretNameOf(binding) };
    });
  }

  /** A bound binding's Secret must exist: a deleted one is written again from the broker's answer. */
  private async keepSecret(binding: ServiceBinding): Promise<ReconcileResult | void> {
    const name = secretNameOf(binding);
    const secret = this.ctx.informers.bindingSecrets.get(`${binding.metadata.namespace}/${name}`);
    if (secret && isControlledBy(secret, binding)) return;
    const target = this.target(binding, false);
    if (target instanceof Blocked) return this.block(binding, target);
    const client = await brokerClient(this.ctx, target.broker);
    if (client instanceof Blocked) return this.block(binding, client);
    // GET binding came with 2.14; an older broker is asked again with an identical bind.
    const retrievable = target.cls.spec.bindingRetrievable === true && client.supports('fetchBinding');
    let rebind: BindRequest | undefined;
    if (!retrievable) {
      const resolved = await objectParameters(this.ctx, binding);
      if (resolved instanceof Blocked) return this.block(binding, resolved);
      rebind = await this.bindRequest(binding, target, resolved.parameters);
    }
    // GET the binding when the broker keeps them; otherwise an identical PUT returns the same credentials (spec: 200).
    const outcome = retrievable
      ? await client.fetchBinding(instanceIdOf(target.instance), bindingId(binding))
      : await client.bind(instanceIdOf(target.instance), bindingId(binding), rebind!, false, this.identity(binding));
    const body =
      outcome.kind === 'response' && outcome.status >= 200 && outcome.status < 300 ? asObject(outcome.body) : undefined;
    if (!body) {
      await this.writeStatus(binding, (s) => {
        s.conditions = setCondition(
          s.conditions,
          ConditionType.Ready,
          'False',
          Reason.ErrorInjectingBindResult,
          `Error injecting bind result: the Secret "${name}" is missing and the broker's credentials could not be fetched: ${describeOutcome(outcome)}`,
          now(),
        );
      });
      return { backoff: true };
    }
    this.ctx.logger.info(
      { binding: objectKey(binding.metadata), secret: name },
      'writing a missing binding Secret again',
    );
    return this.inject(binding, target, body);
  }

  /** The bind body the original sent: app_guid and bind_resource.app_guid are the namespace's UID. */
  private async bindRequest(
    binding: ServiceBinding,
    target: Target,
    parameters: JsonObject | undefined,
  ): Promise<BindRequest> {
    const namespaceUid = await this.ctx.cluster.namespaceUid(binding.metadata.namespace!);
    return {
      service_id: target.serviceId,
      plan_id: target.planId,
      app_guid: namespaceUid,
      bind_resource: { app_guid: namespaceUid },
      context: await kubernetesContext(this.ctx, binding.metadata.namespace, target.instance.metadata.name),
      ...(parameters ? { parameters } : {}),
    };
  }

  private async writeSecret(binding: ServiceBinding, target: Target, credentials: JsonObject): Promise<void> {
    const namespace = binding.metadata.namespace!;
    const name = secretNameOf(binding);
    const values = await transformCredentials(credentials, binding.spec.secretTransforms, namespace, (secretName) =>
      this.ctx.cluster.readSecret(namespace, secretName),
    );
    // servicebinding.io: `type` (the kind of service) and `provider`, unless the broker sent its own.
    const serviceType = typeof values.type === 'string' ? values.type : target.cls.spec.externalName;
    if (!('type' in values)) values.type = serviceType;
    if (!('provider' in values)) values.provider = target.broker.metadata.name;
    const desired: Secret = {
      metadata: {
        name,
        namespace,
        labels: { [MANAGED_BY_LABEL]: MANAGED_BY },
        ownerReferences: [
          {
            apiVersion: API_VERSION,
            kind: 'ServiceBinding',
            name: binding.metadata.name,
            uid: binding.metadata.uid!,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      type: `servicebinding.io/${serviceType}`,
      data: secretData(values),
    };
    let existing = this.ctx.informers.bindingSecrets.get(`${namespace}/${name}`);
    if (!existing) {
      try {
        await this.ctx.objects.createObject<Secret>(Resources.Secret, desired);
        return;
      } catch (error) {
        if (!(error instanceof KubeApiError && error.isAlreadyExists)) throw error;
        existing = await this.ctx.cluster.readSecret(namespace, name);
        if (!existing)
          throw new InjectionError(`Secret "${namespace}/${name}" was being created by someone else; will retry`);
      }
    }
    if (!isControlledBy(existing, binding)) {
      const owner = existing.metadata.ownerReferences?.find((o) => o.controller);
      throw new InjectionError(
        `Secret "${namespace}/${name}" is not owned by ServiceBinding, controllerRef: ${owner ? `${owner.kind}/${owner.name}` : 'none'}`,
      );
    }
    if (JSON.stringify(existing.data ?? {}) === JSON.stringify(desired.data)) return;
    if (existing.type !== desired.type) {
      // A Secret's type cannot change: replace it.
      await this.ctx.client.delete(Resources.Secret, name, namespace, { uid: existing.metadata.uid! });
      await this.ctx.objects.createObject<Secret>(Resources.Secret, desired);
      return;
    }
    await this.ctx.objects.updateObject<Secret>(Resources.Secret, existing, (copy) => {
      copy.data = desired.data!;
      copy.metadata.labels = { ...(copy.metadata.labels ?? {}), ...desired.metadata.labels };
      return true;
    });
  }

  // ---- unbind ----

  private async reconcileDelete(binding: ServiceBinding): Promise<ReconcileResult | void> {
    if (!binding.metadata.finalizers?.includes(FINALIZER)) return;
    // ejectServiceBinding: the Secret goes first, so no pod mounts credentials about to stop working.
    const name = secretNameOf(binding);
    const secret =
      this.ctx.informers.bindingSecrets.get(`${binding.metadata.namespace}/${name}`) ??
      (await this.ctx.cluster.readSecret(binding.metadata.namespace!, name));
    if (secret && isControlledBy(secret, binding)) {
      try {
        await this.ctx.client.delete(Resources.Secret, name, binding.metadata.namespace, { uid: secret.metadata.uid! });
      } catch (error) {
        if (!(error instanceof KubeApiError)) throw error;
        await this.writeStatus(binding, (s) => {
          s.conditions = setCondition(
            s.conditions,
            ConditionType.Ready,
            'False',
            Reason.ErrorEjectingServiceBinding,
            `Error ejecting binding: ${error.message}`,
            now(),
          );
        });
        return { backoff: true };
      }
    }
    if (binding.metadata.annotations?.[ABANDON_ANNOTATION] === 'true') {
      this.ctx.events.record(
        binding,
        'Warning',
        Reason.Abandoned,
        `The binding was abandoned (annotation ${ABANDON_ANNOTATION}); the broker was not asked to unbind it.`,
      );
      return this.removeFinalizer(binding);
    }
    const teardown = binding.status?.unbindStatus ?? '';
    if (teardown === '' || teardown === 'NotRequired' || teardown === 'Succeeded') return this.removeFinalizer(binding);
    if (teardown === 'Failed') return;
    return this.unbind(binding, false);
  }

  private async unbind(binding: ServiceBinding, orphanMitigation: boolean): Promise<ReconcileResult | void> {
    const target = this.target(binding, false);
    if (target instanceof Blocked) {
      await this.writeStatus(binding, (s) => {
        s.conditions = setCondition(
          s.conditions,
          ConditionType.Ready,
          'Unknown',
          target.reason,
          `${target.message} To give up on unbinding, annotate the binding with ${ABANDON_ANNOTATION}="true".`,
          now(),
        );
      });
      return { backoff: true };
    }
    if (target.instance.status?.asyncOpInProgress) {
      await this.writeStatus(binding, (s) => {
        s.conditions = setCondition(
          s.conditions,
          ConditionType.Ready,
          'False',
          Reason.ErrorAsyncOperationInProgress,
          `Cannot unbind while ServiceInstance "${target.instance.metadata.name}" has an operation in progress`,
          now(),
        );
      });
      return { backoff: true };
    }
    if (!orphanMitigation && binding.status?.currentOperation !== 'Unbind') {
      binding = await this.writeStatus(binding, (s) => {
        s.currentOperation = 'Unbind';
        s.operationStartTime = now();
        s.conditions = setCondition(
          s.conditions,
          ConditionType.Ready,
          'False',
          Reason.UnbindingRequestInFlight,
          'Unbind request for ServiceBinding in-flight to Broker',
          now(),
        );
      });
    }
    if (pastRetryDuration(this.ctx, binding.status?.operationStartTime))
      return this.unbindGaveUp(binding, orphanMitigation, RETRY_TIMEOUT_MESSAGE);
    const client = await brokerClient(this.ctx, target.broker);
    if (client instanceof Blocked) return this.block(binding, client);
    const acceptsIncomplete = asyncBindings(target, client);
    const outcome = await client.unbind(
      instanceIdOf(target.instance),
      bindingId(binding),
      { service_id: target.serviceId, plan_id: target.planId },
      acceptsIncomplete,
      this.identity(binding),
    );
    if (outcome.kind === 'response' && (outcome.status === 200 || outcome.status === 410)) return this.unbound(binding);
    const body = outcome.kind === 'response' ? asObject(outcome.body) : undefined;
    if (outcome.kind === 'response' && outcome.status === 202 && body) {
      this.pending.set(objectKey(binding.metadata), acceptedOperation(this.ctx, 'Unbind', body));
      return { requeueAfterMs: this.ctx.config.pollInitialDelayMs };
    }
    return this.unbindRetry(
      binding,
      `Error unbinding from ServiceInstance "${target.instance.metadata.name}": ${describeOutcome(outcome)}`,
    );
  }

  private async unbindRetry(binding: ServiceBinding, message: string): Promise<ReconcileResult> {
    await this.writeStatus(binding, (s) => {
      s.conditions = setCondition(
        s.conditions,
        ConditionType.Ready,
        'Unknown',
        Reason.UnbindCallFailed,
        message,
        now(),
      );
      delete s.asyncOpInProgress;
      delete s.lastOperation;
    });
    return { backoff: true };
  }

  private async unbindGaveUp(binding: ServiceBinding, orphanMitigation: boolean, message: string): Promise<void> {
    await this.writeStatus(binding, (s) => {
      const hint = binding.metadata.deletionTimestamp
        ? ` To remove the binding anyway, annotate it with ${ABANDON_ANNOTATION}="true".`
        : '';
      s.conditions = setCondition(
        s.conditions,
        ConditionType.Ready,
        'Unknown',
        orphanMitigation ? Reason.OrphanMitigationFailed : Reason.UnbindCallFailed,
        `${message}.${hint}`,
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
      s.unbindStatus = 'Failed';
      delete s.orphanMitigationInProgress;
      delete s.asyncOpInProgress;
      delete s.currentOperation;
    });
  }

  private async unbound(binding: ServiceBinding): Promise<ReconcileResult | void> {
    this.pending.delete(objectKey(binding.metadata));
    const orphanMitigation = binding.status?.orphanMitigationInProgress === true;
    if (!orphanMitigation && binding.metadata.deletionTimestamp) {
      this.ctx.events.record(binding, 'Normal', Reason.UnboundSuccessfully, 'The binding was deleted successfully');
      return this.removeFinalizer(binding);
    }
    const written = await this.writeStatus(binding, (s) => {
      s.conditions = setCondition(
        s.conditions,
        ConditionType.Ready,
        'False',
        orphanMitigation ? Reason.OrphanMitigationSuccessful : Reason.UnboundSuccessfully,
        orphanMitigation ? 'Orphan mitigation was completed successfully' : 'The binding was deleted successfully',
        now(),
      );
      s.unbindStatus = 'Succeeded';
      delete s.orphanMitigationInProgress;
      delete s.currentOperation;
      delete s.operationStartTime;
      delete s.asyncOpInProgress;
      delete s.lastOperation;
      delete s.inProgressProperties;
      delete s.externalProperties;
    });
    if (written.metadata.deletionTimestamp) return { requeueAfterMs: 0 };
  }

  // ---- async ----

  private async poll(binding: ServiceBinding, pending: PendingOperation | undefined): Promise<ReconcileResult | void> {
    const key = objectKey(binding.metadata);
    const status = binding.status ?? {};
    if (pending && Date.now() < pending.dueAt) return { requeueAfterMs: pending.dueAt - Date.now() };
    const operation: BindingOperation =
      pending?.operation ?? (status.orphanMitigationInProgress ? 'Unbind' : status.currentOperation || 'Bind');
    const target = this.target(binding, false);
    if (target instanceof Blocked) {
      this.pending.delete(key);
      return this.block(binding, target);
    }
    const agreed = await brokerClient(this.ctx, target.broker);
    if (agreed instanceof Blocked) return this.block(binding, agreed);
    const client = pollingClient(agreed);
    const osbOperation = pending?.osbOperation ?? status.lastOperation;
    const outcome = await client.bindingLastOperation(
      instanceIdOf(target.instance),
      bindingId(binding),
      { service_id: target.serviceId, plan_id: target.planId, ...(osbOperation ? { operation: osbOperation } : {}) },
      this.identity(binding),
    );
    if (operation === 'Unbind' && outcome.kind === 'response' && outcome.status === 410) return this.unbound(binding);
    const answer =
      outcome.kind === 'response' && outcome.status === 200
        ? (asObject(outcome.body) as LastOperationResponse | undefined)
        : undefined;
    if (answer?.state === 'succeeded') {
      this.pending.delete(key);
      if (operation === 'Unbind') return this.unbound(binding);
      const fetched = await client.fetchBinding(instanceIdOf(target.instance), bindingId(binding));
      const body = fetched.kind === 'response' && fetched.status === 200 ? asObject(fetched.body) : undefined;
      if (!body)
        return this.bindFailed(
          binding,
          target,
          Reason.FetchingBindingFailed,
          `Could not fetch the binding from the broker: ${describeOutcome(fetched)}`,
          true,
        );
      return this.inject(binding, target, body);
    }
    if (answer?.state === 'failed') {
      this.pending.delete(key);
      const description = answer.description ?? 'the broker gave no description';
      if (operation === 'Unbind') return this.unbindRetry(binding, `Unbind call failed: ${description}`);
      return this.bindFailed(binding, target, Reason.BindCallFailed, `Bind call failed: ${description}`, false);
    }
    const polls = (pending?.polls ?? 0) + 1;
    if (pastRetryDuration(this.ctx, binding.status?.operationStartTime)) {
      this.pending.delete(key);
      if (operation === 'Unbind')
        return this.unbindGaveUp(binding, status.orphanMitigationInProgress === true, RETRY_TIMEOUT_MESSAGE);
      return this.bindFailed(
        binding,
        target,
        Reason.ErrorReconciliationRetryTimeout,
        'The asynchronous bind did not finish in time',
        true,
      );
    }
    const inProgress = answer?.state === 'in progress';
    const reason = inProgress
      ? operation === 'Bind'
        ? Reason.Binding
        : Reason.Unbinding
      : Reason.ErrorPollingLastOperation;
    const base = inProgress
      ? operation === 'Bind'
        ? 'The binding is being created asynchronously'
        : 'The binding is being deleted asynchronously'
      : `Error polling last operation: ${describeOutcome(outcome)}`;
    const message = inProgress && answer?.description ? `${base} (${answer.description})` : base;
    const current = findCondition(status.conditions, ConditionType.Ready);
    if (!status.asyncOpInProgress || current?.reason !== reason || current.message !== message) {
      await this.writeStatus(binding, (s) => {
        s.asyncOpInProgress = true;
        if (osbOperation) s.lastOperation = osbOperation;
        else delete s.lastOperation;
        if (operation === 'Unbind' && !s.orphanMitigationInProgress) s.currentOperation = 'Unbind';
        s.conditions = setCondition(s.conditions, ConditionType.Ready, 'False', reason, message, now());
      });
    }
    const delay = pollDelayMs(this.ctx, outcome, polls);
    this.pending.set(key, { operation, osbOperation, polls, dueAt: Date.now() + delay });
    return { requeueAfterMs: delay };
  }

  // ---- helpers ----

  /** The instance, class, plan and broker; `forBind` also requires the instance to be Ready. */
  private target(binding: ServiceBinding, forBind: boolean): Target | Blocked {
    const instanceName = binding.spec.instanceRef?.name;
    const instance = instanceName
      ? this.ctx.informers.serviceInstances.get(`${binding.metadata.namespace}/${instanceName}`)
      : undefined;
    if (!instance) {
      return new Blocked(
        Reason.ReferencesNonexistentInstance,
        `References a non-existent ServiceInstance "${binding.metadata.namespace}/${instanceName}"`,
      );
    }
    if (forBind) {
      if (instance.metadata.deletionTimestamp) {
        return new Blocked(
          Reason.ErrorInstanceNotReady,
          `Binding cannot begin because referenced ServiceInstance "${binding.metadata.namespace}/${instanceName}" is being deleted`,
        );
      }
      if (!isReady(instance.status?.conditions) || instance.status?.asyncOpInProgress) {
        return new Blocked(
          Reason.ErrorInstanceNotReady,
          `Binding cannot begin because referenced ServiceInstance "${binding.metadata.namespace}/${instanceName}" is not ready`,
        );
      }
    }
    const refs = instanceRefs(this.ctx, instance);
    if ('invalid' in refs)
      return new Blocked(Reason.ErrorInstanceNotReady, `ServiceInstance "${instanceName}" is invalid: ${refs.invalid}`);
    const { scope, classRef, cls, brokerName, broker, planRef, plan } = refs;
    if (!classRef)
      return new Blocked(
        'ErrorInstanceRefsUnresolved',
        `ServiceInstance "${instanceName}" has not been resolved to a class and plan yet`,
      );
    if (!cls)
      return new Blocked(
        Reason.ReferencesNonexistentServiceClass,
        `References a non-existent ${scope.class.kind} "${classRef}"`,
      );
    if (!broker)
      return new Blocked(Reason.ReferencesNonexistentBroker, `References a non-existent broker "${brokerName}"`);
    // The plan the broker has for the instance (externalProperties), as the original sent.
    const planId = planIdOf(instance.status?.externalProperties) ?? plan?.spec.externalID;
    if (!planId)
      return new Blocked(
        Reason.ReferencesNonexistentServicePlan,
        `References a non-existent ${scope.plan.kind} "${planRef}"`,
      );
    return { instance, broker, cls, plan, serviceId: cls.spec.externalID, planId };
  }

  private identity(binding: ServiceBinding): { identity?: OriginatingIdentity } {
    return originatingIdentity(binding.spec.userInfo);
  }

  private async block(binding: ServiceBinding, blocked: Blocked): Promise<ReconcileResult | void> {
    await this.writeStatus(binding, (s) => {
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
        s.observedGeneration = binding.metadata.generation;
        delete s.currentOperation;
      }
    });
    return blocked.terminal ? undefined : { backoff: true };
  }

  private removeFinalizer(binding: ServiceBinding): Promise<void> {
    this.pending.delete(objectKey(binding.metadata));
    return removeFinalizer(this.ctx, R, binding);
  }

  private writeStatus(binding: ServiceBinding, mutate: (s: ServiceBindingStatus) => void): Promise<ServiceBinding> {
    return this.ctx.objects.writeStatus<ServiceBinding, ServiceBindingStatus>(R, binding, mutate);
  }
}

/**
 * Asynchronous bind and unbind: for services with bindings_retrievable (the result is fetched
 * with GET binding), and only from OSB 2.14; an older broker binds synchronously.
 */
function asyncBindings(target: Target, client: OsbClient): boolean {
  return (
    target.cls.spec.bindingRetrievable === true && client.supports('asyncBindings') && client.supports('fetchBinding')
  );
}

/** The first version with both asynchronous bindings (their last_operation endpoint) and GET binding. */
const ASYNC_BINDINGS_SINCE: ApiMinor =
  FEATURE_SINCE.asyncBindings >= FEATURE_SINCE.fetchBinding ? FEATURE_SINCE.asyncBindings : FEATURE_SINCE.fetchBinding;

/**
 * The client that polls an asynchronous bind or unbind and fetches the binding it made. Such an
 * operation was started at 2.14 or later (accepts_incomplete goes only to such a broker), so the
 * broker has the binding last_operation endpoint and GET binding. A relist since may have settled
 * below 2.14 (a pin, or 412s while the broker rolls out): the operation is still polled to its
 * end, at 2.14, the first version that defines both; otherwise every poll would fail until the
 * retry timeout and orphan mitigation would delete a binding the broker did create.
 */
function pollingClient(client: OsbClient): OsbClient {
  if (client.supports('asyncBindings') && client.supports('fetchBinding')) return client;
  return client.atVersion(ASYNC_BINDINGS_SINCE);
}

export function secretNameOf(binding: ServiceBinding): string {
  return binding.spec.secretName || binding.metadata.name;
}

function bindingId(binding: ServiceBinding): string {
  return binding.spec.externalID || binding.metadata.uid!;
}

function isControlledBy(secret: Secret, binding: ServiceBinding): boolean {
  return (
    secret.metadata.ownerReferences?.some(
      (o) => o.controller && o.kind === 'ServiceBinding' && o.uid === binding.metadata.uid,
    ) ?? false
  );
}
