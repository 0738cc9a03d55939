import { Reason, type BindingOperation, type ServiceBinding, type ServiceBindingStatus } from '../api/v1beta1.js';
import { Resources } from '../kube/resources.js';
import type { OperationKind } from './async-operation.js';

type WriteStatus = (binding: ServiceBinding, mutate: (status: ServiceBindingStatus) => void) => Promise<ServiceBinding>;

/** A ServiceBinding's asynchronous bind and unbind (OSB 2.14 and later), for AsyncOperations. */
export function bindingOperations(
  writeStatus: WriteStatus,
): OperationKind<BindingOperation, ServiceBinding, ServiceBindingStatus> {
  return {
    resource: Resources.ServiceBinding,
    noun: 'binding',
    create: 'Bind',
    teardown: 'Unbind',
    progress: {
      Bind: { reason: Reason.Binding, message: 'The binding is being created asynchronously' },
      Unbind: { reason: Reason.Unbinding, message: 'The binding is being deleted asynchronously' },
    },
    teardownFailedReason: Reason.UnbindCallFailed,
    tornDown: { reason: Reason.UnboundSuccessfully, message: 'The binding was deleted successfully' },
    orphanMitigationGaveUpPrefix: '',
    teardownPollErrorStatus: 'False',
    blockedForGoodClearsProgress: false,
    gaveUpKeepsLastOperation: true,
    writeStatus,
    setTeardownStatus: (status, value) => {
      status.unbindStatus = value;
    },
    markTornDown: (status) => {
      delete status.currentOperation;
      delete status.operationStartTime;
      delete status.inProgressProperties;
    },
    afterTornDown: () => undefined,
  };
}
