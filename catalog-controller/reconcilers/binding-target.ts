import { FEATURE_SINCE, type ApiMinor } from '../../osb/index.js';
import {
  Reason,
  type ServiceBinding,
  type ServiceBroker,
  type ServiceClass,
  type ServiceInstance,
  type ServicePlan,
} from '../api/v1beta1.js';
import { isReady } from '../conditions.js';
import type { ControllerServices } from '../controller-services.js';
import type { OsbClient } from '../osb-client/osb-client.js';
import { Blocked, instanceRefs, planIdOf } from './common.js';

export /** What a binding needs from its instance to talk to the broker. */
interface Target {
  instance: ServiceInstance;
  broker: ServiceBroker;
  cls: ServiceClass;
  plan: ServicePlan | undefined;
  serviceId: string;
  planId: string;
}

/** The instance, class, plan and broker; `forBind` also requires the instance to be Ready. */
export function bindingTarget(ctx: ControllerServices, binding: ServiceBinding, forBind: boolean): Target | Blocked {
  const instanceName = binding.spec.instanceRef?.name;
  const instance = instanceName
    ? ctx.informers.serviceInstances.get(`${binding.metadata.namespace}/${instanceName}`)
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
        `Binding cannot begin because referenced ServiceInstance "${binding.metadata.namespace}/${instanceName}" ` +
          'is being deleted',
      );
    }
    if (!isReady(instance.status?.conditions) || instance.status?.asyncOpInProgress) {
      return new Blocked(
        Reason.ErrorInstanceNotReady,
        `Binding cannot begin because referenced ServiceInstance "${binding.metadata.namespace}/${instanceName}" ` +
          'is not ready',
      );
    }
  }
  const refs = instanceRefs(ctx, instance);
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

/**
 * Asynchronous bind and unbind: for services with bindings_retrievable (the result is fetched
 * with GET binding), and only from OSB 2.14; an older broker binds synchronously.
 */
export function asyncBindings(target: Target, client: OsbClient): boolean {
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
export function pollingClient(client: OsbClient): OsbClient {
  if (client.supports('asyncBindings') && client.supports('fetchBinding')) return client;
  return client.atVersion(ASYNC_BINDINGS_SINCE);
}
