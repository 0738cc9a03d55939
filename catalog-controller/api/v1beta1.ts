/**
 * The servicecatalog.k8s.io/v1beta1 API, as the archived Kubernetes Service Catalog defined it
 * (pkg/apis/servicecatalog/v1beta1/types.go): field names, condition types and reasons, the
 * finalizer. Existing manifests and tools depend on these exact strings.
 */
import type { JsonObject } from '../../osb/index.js';

export const GROUP = 'servicecatalog.k8s.io';
export const VERSION = 'v1beta1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** FinalizerServiceCatalog: set on brokers, instances and bindings before the first broker call. */
export const FINALIZER = 'kubernetes-incubator/service-catalog';

/** Depot: set to "true" on a ServiceInstance or ServiceBinding being deleted to give up on the broker call. */
export const ABANDON_ANNOTATION = 'depot/abandon';

/**
 * Depot: on a (Cluster)ServiceBroker, the OSB API version to speak to it ("2.13" … "2.17"),
 * instead of negotiating one.
 */
export const OSB_API_VERSION_ANNOTATION = 'depot/osb-api-version';

/** Labels the original kept for lookups, value sha224-hex of the field (pkg/util/sha_generator.go). */
export const LABEL = {
  externalId: `${GROUP}/spec.externalID`,
  externalName: `${GROUP}/spec.externalName`,
  clusterBrokerName: `${GROUP}/spec.clusterServiceBrokerName`,
  brokerName: `${GROUP}/spec.serviceBrokerName`,
  clusterClassRef: `${GROUP}/spec.clusterServiceClassRef.name`,
  classRef: `${GROUP}/spec.serviceClassRef.name`,
  clusterPlanRef: `${GROUP}/spec.clusterServicePlanRef.name`,
  planRef: `${GROUP}/spec.servicePlanRef.name`,
} as const;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface ObjectReference {
  name: string;
}

export interface SecretReference {
  name: string;
  namespace?: string;
}

// ---- Brokers ----

export interface ServiceBrokerSpec {
  url: string;
  insecureSkipTLSVerify?: boolean;
  caBundle?: string;
  /** "" is svcat's zero value: Duration, as the original's webhook defaulted it. */
  relistBehavior?: '' | 'Duration' | 'Manual';
  relistDuration?: string;
  relistRequests?: number;
  catalogRestrictions?: { serviceClass?: string[]; servicePlan?: string[] };
  authInfo?: {
    basic?: { secretRef?: SecretReference };
    bearer?: { secretRef?: SecretReference };
  };
  /** Depot: do not send orphan-mitigation DELETEs to this broker. */
  disableOrphanMitigation?: boolean;
}

export interface ServiceBrokerStatus {
  conditions?: Condition[];
  reconciledGeneration?: number;
  operationStartTime?: string;
  lastCatalogRetrievalTime?: string;
  lastConditionState?: string;
  /** Depot: the OSB API version agreed with the broker at the last catalog fetch, e.g. "2.14". */
  osbApiVersion?: string;
  /**
   * Depot: true when osbApiVersion came from the depot/osb-api-version annotation rather than
   * from negotiation, so that adding or removing the annotation is seen as a change of version.
   */
  osbApiVersionPinned?: boolean;
}

export interface ServiceBroker extends KubeObject {
  spec: ServiceBrokerSpec;
  status?: ServiceBrokerStatus;
}

// ---- Classes and plans ----

export interface ServiceClassSpec {
  externalName: string;
  externalID: string;
  description?: string;
  bindable: boolean;
  bindingRetrievable?: boolean;
  planUpdatable?: boolean;
  externalMetadata?: JsonObject;
  tags?: string[];
  requires?: string[];
  defaultProvisionParameters?: JsonObject;
  clusterServiceBrokerName?: string;
  serviceBrokerName?: string;
}

export interface ServiceClass extends KubeObject {
  spec: ServiceClassSpec;
  status?: { removedFromBrokerCatalog?: boolean };
}

export interface ServicePlanSpec {
  externalName: string;
  externalID: string;
  description?: string;
  bindable?: boolean;
  free?: boolean;
  externalMetadata?: JsonObject;
  instanceCreateParameterSchema?: JsonObject;
  instanceUpdateParameterSchema?: JsonObject;
  serviceBindingCreateParameterSchema?: JsonObject;
  defaultProvisionParameters?: JsonObject;
  clusterServiceBrokerName?: string;
  serviceBrokerName?: string;
  clusterServiceClassRef?: ObjectReference;
  serviceClassRef?: ObjectReference;
  /** Depot: OSB plan-level plan_updateable. */
  planUpdatable?: boolean;
  /** Depot: OSB maximum_polling_duration, seconds. */
  maximumPollingDuration?: number;
  maintenanceInfo?: { version: string; description?: string };
  bindingRotatable?: boolean;
}

export interface ServicePlan extends KubeObject {
  spec: ServicePlanSpec;
  status?: { removedFromBrokerCatalog?: boolean };
}

// ---- Instances ----

export interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface ParametersFromSource {
  secretKeyRef?: { name: string; key: string };
}

export interface ServiceInstanceSpec {
  clusterServiceClassExternalName?: string;
  clusterServicePlanExternalName?: string;
  clusterServiceClassExternalID?: string;
  clusterServicePlanExternalID?: string;
  clusterServiceClassName?: string;
  clusterServicePlanName?: string;
  serviceClassExternalName?: string;
  servicePlanExternalName?: string;
  serviceClassExternalID?: string;
  servicePlanExternalID?: string;
  serviceClassName?: string;
  servicePlanName?: string;
  clusterServiceClassRef?: ObjectReference;
  clusterServicePlanRef?: ObjectReference;
  serviceClassRef?: ObjectReference;
  servicePlanRef?: ObjectReference;
  parameters?: JsonObject;
  parametersFrom?: ParametersFromSource[];
  externalID?: string;
  userInfo?: UserInfo;
  updateRequests?: number;
}

export type InstanceOperation = 'Provision' | 'Update' | 'Deprovision';
export type ProvisionStatus = '' | 'Provisioned' | 'NotProvisioned';
export type TeardownStatus = '' | 'NotRequired' | 'Required' | 'Succeeded' | 'Failed';

export interface InstanceProperties {
  clusterServicePlanExternalName?: string;
  clusterServicePlanExternalID?: string;
  servicePlanExternalName?: string;
  servicePlanExternalID?: string;
  /** Values that came from Secrets read "<redacted>". */
  parameters?: JsonObject;
  /** sha256 hex of the JSON of the unredacted parameters. */
  parameterChecksum?: string;
  userInfo?: UserInfo;
}

export interface ServiceInstanceStatus {
  conditions?: Condition[];
  asyncOpInProgress?: boolean;
  orphanMitigationInProgress?: boolean;
  lastOperation?: string;
  dashboardURL?: string;
  currentOperation?: InstanceOperation | '';
  reconciledGeneration?: number;
  observedGeneration?: number;
  operationStartTime?: string;
  inProgressProperties?: InstanceProperties;
  externalProperties?: InstanceProperties;
  provisionStatus?: ProvisionStatus;
  deprovisionStatus?: TeardownStatus;
  lastConditionState?: string;
  userSpecifiedPlanName?: string;
  userSpecifiedClassName?: string;
}

export interface ServiceInstance extends KubeObject {
  spec: ServiceInstanceSpec;
  status?: ServiceInstanceStatus;
}

// ---- Bindings ----

export interface SecretTransform {
  renameKey?: { from: string; to: string };
  addKey?: { key: string; value?: string; stringValue?: string; jsonPathExpression?: string };
  addKeysFrom?: { secretRef?: SecretReference };
  removeKey?: { key: string };
}

export interface ServiceBindingSpec {
  instanceRef: ObjectReference;
  parameters?: JsonObject;
  parametersFrom?: ParametersFromSource[];
  secretName?: string;
  secretTransforms?: SecretTransform[];
  externalID?: string;
  userInfo?: UserInfo;
}

export type BindingOperation = 'Bind' | 'Unbind';

export interface BindingProperties {
  parameters?: JsonObject;
  parameterChecksum?: string;
  userInfo?: UserInfo;
}

export interface ServiceBindingStatus {
  conditions?: Condition[];
  asyncOpInProgress?: boolean;
  lastOperation?: string;
  currentOperation?: BindingOperation | '';
  reconciledGeneration?: number;
  observedGeneration?: number;
  operationStartTime?: string;
  inProgressProperties?: BindingProperties;
  externalProperties?: BindingProperties;
  orphanMitigationInProgress?: boolean;
  unbindStatus?: TeardownStatus;
  lastConditionState?: string;
  /** servicebinding.io Provisioned Service: the Secret holding the credentials. */
  binding?: { name: string };
}

export interface ServiceBinding extends KubeObject {
  spec: ServiceBindingSpec;
  status?: ServiceBindingStatus;
}

// ---- Core kinds the controller touches ----

export interface Secret extends KubeObject {
  type?: string;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

export type Namespace = KubeObject;

export interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

export interface Lease extends KubeObject {
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

/** Condition types. */
export const ConditionType = {
  Ready: 'Ready',
  Failed: 'Failed',
  OrphanMitigation: 'OrphanMitigation',
} as const;

/** Reason strings, exactly as the Service Catalog's pkg/controller spells them (users and tools match them). */
export const Reason = {
  // brokers
  FetchedCatalog: 'FetchedCatalog',
  ErrorFetchingCatalog: 'ErrorFetchingCatalog',
  ErrorSyncingCatalog: 'ErrorSyncingCatalog',
  ErrorGettingAuthCredentials: 'ErrorGettingAuthCredentials',
  DeletedClusterServiceBrokerSuccessfully: 'DeletedClusterServiceBrokerSuccessfully',
  DeletedSuccessfully: 'DeletedSuccessfully',
  ErrorReconciliationRetryTimeout: 'ErrorReconciliationRetryTimeout',
  // instances
  ProvisionRequestInFlight: 'ProvisionRequestInFlight',
  UpdateInstanceRequestInFlight: 'UpdateInstanceRequestInFlight',
  DeprovisionRequestInFlight: 'DeprovisionRequestInFlight',
  Provisioning: 'Provisioning',
  UpdatingInstance: 'UpdatingInstance',
  Deprovisioning: 'Deprovisioning',
  ProvisionedSuccessfully: 'ProvisionedSuccessfully',
  InstanceUpdatedSuccessfully: 'InstanceUpdatedSuccessfully',
  DeprovisionedSuccessfully: 'DeprovisionedSuccessfully',
  OrphanMitigationSuccessful: 'OrphanMitigationSuccessful',
  ProvisionCallFailed: 'ProvisionCallFailed',
  ErrorCallingProvision: 'ErrorCallingProvision',
  UpdateInstanceCallFailed: 'UpdateInstanceCallFailed',
  ErrorCallingUpdateInstance: 'ErrorCallingUpdateInstance',
  DeprovisionCallFailed: 'DeprovisionCallFailed',
  ErrorPollingLastOperation: 'ErrorPollingLastOperation',
  ErrorWithParameters: 'ErrorWithParameters',
  ErrorFindingNamespaceForInstance: 'ErrorFindingNamespaceForInstance',
  ReferencesNonexistentServiceClass: 'ReferencesNonexistentServiceClass',
  ReferencesNonexistentServicePlan: 'ReferencesNonexistentServicePlan',
  ReferencesNonexistentBroker: 'ReferencesNonexistentBroker',
  ReferencesDeletedServiceClass: 'ReferencesDeletedServiceClass',
  ReferencesDeletedServicePlan: 'ReferencesDeletedServicePlan',
  DeprovisionBlockedByExistingCredentials: 'DeprovisionBlockedByExistingCredentials',
  StartingInstanceOrphanMitigation: 'StartingInstanceOrphanMitigation',
  OrphanMitigationFailed: 'OrphanMitigationFailed',
  ClusterServiceBrokerReturnedFailure: 'ClusterServiceBrokerReturnedFailure',
  RetryBackoff: 'RetryBackoff',
  /** Depot: the webhook checks of the original, reported as conditions. */
  InvalidSpec: 'InvalidSpec',
  PlanChangeNotAllowed: 'PlanChangeNotAllowed',
  /** Depot: the abandon annotation released the object without a broker call. */
  Abandoned: 'Abandoned',
  // bindings
  BindingRequestInFlight: 'BindingRequestInFlight',
  UnbindingRequestInFlight: 'UnbindingRequestInFlight',
  Binding: 'Binding',
  Unbinding: 'Unbinding',
  InjectedBindResult: 'InjectedBindResult',
  UnboundSuccessfully: 'UnboundSuccessfully',
  BindCallFailed: 'BindCallFailed',
  ServiceBindingReturnedFailure: 'ServiceBindingReturnedFailure',
  ErrorInjectingBindResult: 'ErrorInjectingBindResult',
  ErrorEjectingServiceBinding: 'ErrorEjectingServiceBinding',
  UnbindCallFailed: 'UnbindCallFailed',
  ErrorNonbindableServiceClass: 'ErrorNonbindableServiceClass',
  ErrorInstanceNotReady: 'ErrorInstanceNotReady',
  ReferencesNonexistentInstance: 'ReferencesNonexistentInstance',
  ServiceBindingNeedsOrphanMitigation: 'ServiceBindingNeedsOrphanMitigation',
  FetchingBindingFailed: 'FetchingBindingFailed',
  AsyncOperationTimeout: 'AsyncOperationTimeout',
  ErrorAsyncOperationInProgress: 'ErrorAsyncOperationInProgress',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];
