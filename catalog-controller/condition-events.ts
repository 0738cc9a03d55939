import type { Condition, KubeObject } from './api/v1beta1.js';
import { ConditionType } from './api/v1beta1.js';
import { findCondition } from './conditions.js';
import type { EventRecorder } from './kube/event-recorder.js';

/** Reasons whose events are Warnings; every other transition is Normal. */
const NORMAL_REASONS = new Set([
  'FetchedCatalog',
  'ProvisionRequestInFlight',
  'UpdateInstanceRequestInFlight',
  'DeprovisionRequestInFlight',
  'Provisioning',
  'UpdatingInstance',
  'Deprovisioning',
  'ProvisionedSuccessfully',
  'InstanceUpdatedSuccessfully',
  'DeprovisionedSuccessfully',
  'OrphanMitigationSuccessful',
  'BindingRequestInFlight',
  'UnbindingRequestInFlight',
  'Binding',
  'Unbinding',
  'InjectedBindResult',
  'UnboundSuccessfully',
  'DeletedClusterServiceBrokerSuccessfully',
  'DeletedSuccessfully',
]);

/**
 * One Event per change of the Ready condition (reason, status or message), and one when Failed
 * becomes True, as the original controller recorded them for `kubectl describe`.
 */
export class ConditionEvents {
  constructor(private readonly events: EventRecorder) {}

  record(object: KubeObject, before: Condition[] | undefined, after: Condition[] | undefined): void {
    for (const type of [ConditionType.Ready, ConditionType.Failed]) {
      const was = findCondition(before, type);
      const is = findCondition(after, type);
      if (!is || (was && was.reason === is.reason && was.status === is.status && was.message === is.message)) continue;
      if (type === ConditionType.Failed && is.status !== 'True') continue;
      this.events.record(object, NORMAL_REASONS.has(is.reason) ? 'Normal' : 'Warning', is.reason, is.message);
    }
  }
}
