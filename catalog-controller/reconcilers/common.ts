import type { JsonObject, OriginatingIdentity } from '../../osb/index.js';
import { ErrorCode } from '../../osb/index.js';
import {
  FINALIZER,
  Reason,
  type InstanceProperties,
  type KubeObject,
  type ServiceBinding,
  type ServiceBroker,
  type ServiceClass,
  type ServiceInstance,
  type ServicePlan,
  type UserInfo,
} from '../api/v1beta1.js';
import { CallLimitError } from '../call-limits.js';
import { scopeOfInstance, type CatalogScope } from '../catalog-scope.js';
import type { ControllerServices } from '../controller-services.js';
import { BrokerAuthError } from '../osb-client/broker-authorization.js';
import type { Resource } from '../kube/resources.js';
import type { OsbClient, OsbOutcome } from '../osb-client/osb-client.js';
import { ParametersError, resolveParameters, type ResolvedParameters } from '../parameters.js';

/** Why an object cannot be acted on yet; written as its Ready condition. */
export class Blocked {
  constructor(
    readonly reason: string,
    readonly message: string,
    /** Terminal until the spec changes (Failed=True), instead of retried. */
    readonly terminal = false,
  ) {}
}

/** The object's `parameters` and `parametersFrom` resolved, or why they cannot be (ErrorWithParameters). */
export async function objectParameters(
  ctx: ControllerServices,
  object: ServiceInstance | ServiceBinding,
): Promise<ResolvedParameters | Blocked> {
  try {
    return await resolveParameters(
      object.metadata.namespace!,
      object.spec.parameters,
      object.spec.parametersFrom,
      (ns, name) => ctx.cluster.readSecret(ns, name),
    );
  } catch (error) {
    // A Secret read past KUBE_REQUEST_TIMEOUT_MS or KUBE_MAX_RESPONSE_BYTES: reported, and retried.
    if (error instanceof ParametersError || error instanceof CallLimitError)
      return new Blocked(Reason.ErrorWithParameters, `failed to prepare parameters: ${error.message}`);
    throw error;
  }
}

/**
 * The message of Failed (reason ErrorReconciliationRetryTimeout) when an operation has been
 * retried for longer than RECONCILIATION_RETRY_DURATION_SECONDS.
 */
export const RETRY_TIMEOUT_MESSAGE = 'Stopping reconciliation retries because too much time has elapsed';

/** Whether an operation started at `operationStartTime` is past RECONCILIATION_RETRY_DURATION_SECONDS. */
export function pastRetryDuration(ctx: ControllerServices, operationStartTime: string | undefined): boolean {
  const started = Date.parse(operationStartTime ?? '');
  return Number.isFinite(started) && Date.now() - started > ctx.config.reconciliationRetryDurationMs;
}

export function asObject(body: unknown): JsonObject | undefined {
  return body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as JsonObject) : undefined;
}

/**
 * Responses that retrying the same request cannot fix: 400 (the original's rule), and 409/422
 * other than ConcurrencyError (a conflict with what the broker has; a refused request).
 */
export function isTerminal(outcome: OsbOutcome): boolean {
  if (outcome.kind !== 'response') return false;
  if (outcome.status === 400) return true;
  if (outcome.status === 409 || outcome.status === 422) {
    const error = asObject(outcome.body)?.error;
    return error !== ErrorCode.ConcurrencyError;
  }
  return false;
}

/** The OSB instance_id: spec.externalID, which the controller fills with the object's UID. */
export function instanceIdOf(instance: ServiceInstance): string {
  return instance.spec.externalID || instance.metadata.uid!;
}

export function planIdOf(properties: InstanceProperties | undefined): string | undefined {
  return properties?.clusterServicePlanExternalID ?? properties?.servicePlanExternalID;
}

/** The broker's OSB client; a broken auth Secret blocks the object instead of failing the pass. */
export async function brokerClient(ctx: ControllerServices, broker: ServiceBroker): Promise<OsbClient | Blocked> {
  try {
    return await ctx.osbClients.clientOf(broker);
  } catch (error) {
    if (error instanceof BrokerAuthError)
      return new Blocked(Reason.ReferencesNonexistentBroker, `Error getting broker auth credentials: ${error.message}`);
    throw error;
  }
}

/** What an instance's recorded refs point at in the caches; each is missing when it is gone. */
export interface InstanceRefs {
  scope: CatalogScope;
  classRef: string | undefined;
  cls: ServiceClass | undefined;
  brokerName: string | undefined;
  broker: ServiceBroker | undefined;
  planRef: string | undefined;
  plan: ServicePlan | undefined;
}

/** Follows spec.(cluster)ServiceClassRef / PlanRef, and the class's broker; undefined for an invalid spec. */
export function instanceRefs(ctx: ControllerServices, instance: ServiceInstance): InstanceRefs | { invalid: string } {
  const scope = scopeOfInstance(instance);
  if ('invalid' in scope) return scope;
  const namespace = scope.cluster ? undefined : instance.metadata.namespace;
  const key = (name: string): string => (namespace ? `${namespace}/${name}` : name);
  const classRef = instance.spec[scope.classRefField]?.name;
  const cls = classRef ? ctx.informerOf<ServiceClass>(scope.class).get(key(classRef)) : undefined;
  const brokerName = cls?.spec[scope.brokerNameField];
  const broker = brokerName ? ctx.informerOf<ServiceBroker>(scope.broker).get(key(brokerName)) : undefined;
  const planRef = instance.spec[scope.instancePlanRefField]?.name;
  const plan = planRef ? ctx.informerOf<ServicePlan>(scope.plan).get(key(planRef)) : undefined;
  return { scope, classRef, cls, brokerName, broker, planRef, plan };
}

/** X-Broker-API-Originating-Identity from spec.userInfo, as the original sent it; omitted without one. */
export function originatingIdentity(user: UserInfo | undefined): { identity?: OriginatingIdentity } {
  return user ? { identity: { platform: 'kubernetes', value: { ...user } } } : {};
}

/** The OSB profile's "Kubernetes Context Object" (profile.md): platform, namespace, clusterid, instance_name. */
export async function kubernetesContext(
  ctx: ControllerServices,
  namespace: string | undefined,
  instanceName: string,
): Promise<JsonObject> {
  return { platform: 'kubernetes', namespace, clusterid: await ctx.cluster.clusterId(), instance_name: instanceName };
}

/** Removes our finalizer (the object then goes, if it was being deleted). */
export async function removeFinalizer(ctx: ControllerServices, resource: Resource, object: KubeObject): Promise<void> {
  await ctx.objects.updateObject(resource, object, (copy) => {
    const before = copy.metadata.finalizers ?? [];
    copy.metadata.finalizers = before.filter((f) => f !== FINALIZER);
    return copy.metadata.finalizers.length !== before.length;
  });
}
