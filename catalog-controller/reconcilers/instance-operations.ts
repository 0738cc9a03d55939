import {
  ConditionType,
  Reason,
  type InstanceOperation,
  type ServiceInstance,
  type ServiceInstanceStatus,
} from '../api/v1beta1.js';
import { isFailed, removeCondition } from '../conditions.js';
import { Resources } from '../kube/resources.js';
import type { OperationKind } from './async-operation.js';

type WriteStatus = (
  instance: ServiceInstance,
  mutate: (status: ServiceInstanceStatus) => void,
) => Promise<ServiceInstance>;

/** A ServiceInstance's asynchronous provision, update and deprovision, for AsyncOperations. */
export function instanceOperations(
  writeStatus: WriteStatus,
): OperationKind<InstanceOperation, ServiceInstance, ServiceInstanceStatus> {
  return {
    resource: Resources.ServiceInstance,
    noun: 'instance',
    create: 'Provision',
    teardown: 'Deprovision',
    progress: {
      Provision: { reason: Reason.Provisioning, message: 'The instance is being provisioned asynchronously' },
      Update: { reason: Reason.UpdatingInstance, message: 'The instance is being updated asynchronously' },
      Deprovision: { reason: Reason.Deprovisioning, message: 'The instance is being deprovisioned asynchronously' },
    },
    teardownFailedReason: Reason.DeprovisionCallFailed,
    tornDown: { reason: Reason.DeprovisionedSuccessfully, message: 'The instance was deprovisioned successfully' },
    orphanMitigationGaveUpPrefix: 'Orphan mitigation failed: ',
    teardownPollErrorStatus: 'Unknown',
    blockedForGoodClearsProgress: true,
    gaveUpKeepsLastOperation: false,
    writeStatus,
    setTeardownStatus: (status, value) => {
      status.deprovisionStatus = value;
    },
    markTornDown: (status, orphanMitigation) => {
      status.conditions = removeCondition(status.conditions, ConditionType.OrphanMitigation);
      status.provisionStatus = 'NotProvisioned';
      // A retriable failure keeps its operation and its start, so provision → orphan
      // mitigation → provision still ends at the retry duration (ErrorReconciliationRetryTimeout).
      if (!orphanMitigation || isFailed(status.conditions)) {
        delete status.currentOperation;
        delete status.operationStartTime;
        delete status.inProgressProperties;
      }
    },
    // A retriable failure provisions again, behind the key's growing backoff (no flood).
    afterTornDown: (written) => (isFailed(written.status?.conditions) ? undefined : { backoff: true }),
  };
}
