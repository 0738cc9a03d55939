import type { BindRequest, JsonObject, OriginatingIdentity } from '../../osb/index.js';
import {
  ABANDON_ANNOTATION,
  ConditionType,
  FINALIZER,
  Reason,
  type BindingOperation,
  type BindingProperties,
  type ServiceBinding,
  type ServiceBindingStatus,
} from '../api/v1beta1.js';
import { now } from '../clock.js';
import { isFailed, isReady, putCondition, removeCondition } from '../conditions.js';
import type { ControllerServices } from '../controller-services.js';
import { KubeApiError } from '../kube/kube-client.js';
import { Resources, objectKey } from '../kube/resources.js';
import { describeOutcome, type OsbClient, type OsbOutcome } from '../osb-client/osb-client.js';
import { SecretTransformError } from '../secret-data.js';
import type { ReconcileResult } from '../work-queue.js';
import { AsyncOperations, type CreateEnds, type PendingOperation } from './async-operation.js';
import { bindingOperations } from './binding-operations.js';
import { InjectionError, isControlledBy, secretNameOf, writeBindingSecret } from './binding-secret.js';
import { asyncBindings, bindingTarget, pollingClient, type Target } from './binding-target.js';
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
} from './common.js';

const R = Resources.ServiceBinding;

/**
 * ServiceBinding. Waits for its instance to be Ready, binds (asynchronously
 * when the service has bindings_retrievable), and writes the credentials to the Secret
 * `spec.secretName` (default: the binding's name), owned by the binding. The Secret is kept:
 * a deleted one is written again; one owned by someone else is never overwritten. The binding
 * is also a servicebinding.io Provisioned Service (`status.binding.name`; keys `type` and
 * `provider`). Delete: the Secret, then the unbind, then the finalizer.
 */
export class BindingReconciler {
  private readonly operations: AsyncOperations<BindingOperation, ServiceBinding, ServiceBindingStatus>;

  constructor(private readonly ctx: ControllerServices) {
    this.operations = new AsyncOperations(
      ctx,
      bindingOperations((binding, mutate) => this.writeStatus(binding, mutate)),
    );
  }

  async reconcile(key: string): Promise<ReconcileResult | void> {
    const binding = this.ctx.informers.serviceBindings.get(key);
    if (!binding) {
      this.operations.forget(key);
      return;
    }
    const status = binding.status ?? {};
    const pending = this.operations.pendingOf(key);
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
          `spec.secretName "${secretName}" is not a valid Secret name ` +
            '(lowercase letters, digits, "-" and ".", at most 253 characters)',
          true,
        ),
      );
    }
    const target = bindingTarget(this.ctx, binding, true);
    if (target instanceof Blocked) return this.block(binding, target);
    const bindable = target.plan?.spec.bindable ?? target.cls.spec.bindable;
    if (!bindable) {
      return this.block(
        binding,
        new Blocked(
          Reason.ErrorNonbindableServiceClass,
          `References a non-bindable ${target.cls.kind} (K8S: "${target.cls.metadata.name}" ` +
            `ExternalName: "${target.cls.spec.externalName}") and Plan ` +
            `("${target.plan?.spec.externalName ?? target.planId}") combination`,
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
        putCondition(
          s,
          ConditionType.Ready,
          'False',
          Reason.BindingRequestInFlight,
          'Binding request for ServiceBinding in-flight to Broker',
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
        putCondition(
          s,
          ConditionType.Ready,
          'False',
          Reason.BindCallFailed,
          `Error creating ServiceBinding for ServiceInstance "${target.instance.metadata.name}": ${outcome.message}`,
        );
      });
      return { backoff: true };
    }
    const body = asObject(outcome.body);
    if ((outcome.status === 200 || outcome.status === 201) && body) return this.inject(binding, target, body);
    if (outcome.status === 202 && body) {
      return this.operations.accepted(binding, 'Bind', body);
    }
    const message = `ServiceBroker returned failure; bind operation will not be retried: ${describeOutcome(outcome)}`;
    // Any HTTP error is terminal for this generation; a non-200 2xx or a 5xx may have left a binding behind.
    const ambiguous = outcome.status >= 500 || (outcome.status > 200 && outcome.status < 300);
    if (!isTerminal(outcome) && !ambiguous) {
      // 401, 403, 404, 408, 429, 3xx: the request may succeed later (auth fixed, broker back).
      await this.writeStatus(binding, (s) => {
        putCondition(
          s,
          ConditionType.Ready,
          'False',
          Reason.BindCallFailed,
          `ServiceBroker returned failure; bind will be retried: ${describeOutcome(outcome)}`,
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
      putCondition(
        s,
        ConditionType.Ready,
        'False',
        mitigate ? Reason.ServiceBindingNeedsOrphanMitigation : Reason.BindCallFailed,
        mitigate ? 'Starting orphan mitigation' : message,
      );
      putCondition(s, ConditionType.Failed, 'True', failedReason, message);
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
    this.operations.forget(objectKey(binding.metadata));
    const credentials = asObject(response.credentials) ?? {};
    try {
      await writeBindingSecret(this.ctx, binding, target, credentials);
    } catch (error) {
      // injectServiceBinding: any failure to write the Secret (also one the API refuses: a key
      // or name that is not valid) is ErrorInjectingBindResult, retried; not a silent log line.
      if (error instanceof InjectionError || error instanceof SecretTransformError || error instanceof KubeApiError) {
        await this.writeStatus(binding, (s) => {
          putCondition(
            s,
            ConditionType.Ready,
            'False',
            Reason.ErrorInjectingBindResult,
            `Error injecting bind result: ${error.message}`,
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
      putCondition(s, ConditionType.Ready, 'True', Reason.InjectedBindResult, 'Injected bind result');
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
    const target = bindingTarget(this.ctx, binding, false);
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
        putCondition(
          s,
          ConditionType.Ready,
          'False',
          Reason.ErrorInjectingBindResult,
          `Error injecting bind result: the Secret "${name}" is missing and the broker's credentials ` +
            `could not be fetched: ${describeOutcome(outcome)}`,
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
          putCondition(
            s,
            ConditionType.Ready,
            'False',
            Reason.ErrorEjectingServiceBinding,
            `Error ejecting binding: ${error.message}`,
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
    const target = bindingTarget(this.ctx, binding, false);
    if (target instanceof Blocked) {
      await this.writeStatus(binding, (s) => {
        putCondition(
          s,
          ConditionType.Ready,
          'Unknown',
          target.reason,
          `${target.message} To give up on unbinding, annotate the binding with ${ABANDON_ANNOTATION}="true".`,
        );
      });
      return { backoff: true };
    }
    if (target.instance.status?.asyncOpInProgress) {
      await this.writeStatus(binding, (s) => {
        putCondition(
          s,
          ConditionType.Ready,
          'False',
          Reason.ErrorAsyncOperationInProgress,
          `Cannot unbind while ServiceInstance "${target.instance.metadata.name}" has an operation in progress`,
        );
      });
      return { backoff: true };
    }
    if (!orphanMitigation && binding.status?.currentOperation !== 'Unbind') {
      binding = await this.writeStatus(binding, (s) => {
        s.currentOperation = 'Unbind';
        s.operationStartTime = now();
        putCondition(
          s,
          ConditionType.Ready,
          'False',
          Reason.UnbindingRequestInFlight,
          'Unbind request for ServiceBinding in-flight to Broker',
        );
      });
    }
    if (pastRetryDuration(this.ctx, binding.status?.operationStartTime)) {
      return this.operations.teardownGaveUp(binding, orphanMitigation, RETRY_TIMEOUT_MESSAGE);
    }
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
    if (outcome.kind === 'response' && (outcome.status === 200 || outcome.status === 410)) {
      return this.operations.tornDown(binding);
    }
    const body = outcome.kind === 'response' ? asObject(outcome.body) : undefined;
    if (outcome.kind === 'response' && outcome.status === 202 && body) {
      return this.operations.accepted(binding, 'Unbind', body);
    }
    return this.operations.teardownRetry(
      binding,
      orphanMitigation,
      `Error unbinding from ServiceInstance "${target.instance.metadata.name}": ${describeOutcome(outcome)}`,
    );
  }

  // ---- async ----

  private async poll(
    binding: ServiceBinding,
    pending: PendingOperation<BindingOperation> | undefined,
  ): Promise<ReconcileResult | void> {
    const notDue = this.operations.notDue(pending);
    if (notDue) return notDue;
    const operation = this.operations.operationOf(binding, pending);
    const target = bindingTarget(this.ctx, binding, false);
    if (target instanceof Blocked) {
      this.operations.forget(objectKey(binding.metadata));
      return this.block(binding, target);
    }
    const agreed = await brokerClient(this.ctx, target.broker);
    if (agreed instanceof Blocked) return this.block(binding, agreed);
    const client = pollingClient(agreed);
    const osbOperation = this.operations.osbOperationOf(binding, pending);
    const outcome = await client.bindingLastOperation(
      instanceIdOf(target.instance),
      bindingId(binding),
      { service_id: target.serviceId, plan_id: target.planId, ...(osbOperation ? { operation: osbOperation } : {}) },
      this.identity(binding),
    );
    const poll = { operation, pending, osbOperation, outcome };
    return this.operations.polled(binding, poll, this.pollEnds(binding, target, client));
  }

  /**
   * How a polled bind ends: a success is fetched with GET binding and injected; a failure or a
   * timeout is Failed for this generation, and a timeout or a failed fetch is orphan-mitigated.
   */
  private pollEnds(binding: ServiceBinding, target: Target, client: OsbClient): CreateEnds {
    return {
      succeeded: async () => {
        const fetched = await client.fetchBinding(instanceIdOf(target.instance), bindingId(binding));
        const body = fetched.kind === 'response' && fetched.status === 200 ? asObject(fetched.body) : undefined;
        if (body) return this.inject(binding, target, body);
        const message = `Could not fetch the binding from the broker: ${describeOutcome(fetched)}`;
        return this.bindFailed(binding, target, Reason.FetchingBindingFailed, message, true);
      },
      failed: (message) => this.bindFailed(binding, target, Reason.BindCallFailed, message, false),
      timedOut: () => {
        const message = 'The asynchronous bind did not finish in time';
        return this.bindFailed(binding, target, Reason.ErrorReconciliationRetryTimeout, message, true);
      },
    };
  }

  // ---- helpers ----

  private identity(binding: ServiceBinding): { identity?: OriginatingIdentity } {
    return originatingIdentity(binding.spec.userInfo);
  }

  private block(binding: ServiceBinding, blocked: Blocked): Promise<ReconcileResult | void> {
    return this.operations.block(binding, blocked);
  }

  private removeFinalizer(binding: ServiceBinding): Promise<void> {
    return this.operations.removeFinalizer(binding);
  }

  private writeStatus(binding: ServiceBinding, mutate: (s: ServiceBindingStatus) => void): Promise<ServiceBinding> {
    return this.ctx.objects.writeStatus<ServiceBinding, ServiceBindingStatus>(R, binding, mutate);
  }
}

function bindingId(binding: ServiceBinding): string {
  return binding.spec.externalID || binding.metadata.uid!;
}
