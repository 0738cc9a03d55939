import type {
  AsyncOperationResponse,
  BindRequest,
  BindResponse,
  FetchBindingResponse,
  FetchInstanceResponse,
  LastOperationResponse,
  OriginatingIdentity,
  ProvisionRequest,
  ProvisionResponse,
  UpdateRequest,
} from '../osb/index.js';

/** What every mutating request carries besides its body. */
export interface RequestOptions {
  /** `accepts_incomplete=true` was sent. */
  acceptsIncomplete: boolean;
  originatingIdentity: OriginatingIdentity | null;
  /** X-Broker-API-Request-Identity (or one generated for the request). */
  requestIdentity: string;
}

/** A response the OSB API defines: its status code and body. */
export interface Reply<Status extends number, Body> {
  status: Status;
  body: Body;
}

/** Query parameters of DELETE instance and DELETE binding (both REQUIRED by the spec). */
export interface DeleteDetails {
  service_id: string;
  plan_id: string;
}

/** Query parameters of the last_operation endpoints. */
export interface PollDetails {
  service_id?: string;
  plan_id?: string;
  operation?: string;
}

export interface LastOperationReply {
  body: LastOperationResponse;
  /** Retry-After in whole seconds, while the operation is in progress. */
  retryAfterSeconds?: number;
}

/**
 * The OSB API v2.17, one method per endpoint. Methods throw a BrokerError for every response
 * the spec defines as an error; the HTTP layer only translates.
 */
export interface ServiceBroker {
  /** PUT /v2/service_instances/:instance_id */
  provision(
    instanceId: string,
    details: ProvisionRequest,
    options: RequestOptions,
  ): Promise<Reply<200 | 202, ProvisionResponse | AsyncOperationResponse>>;

  /** GET /v2/service_instances/:instance_id */
  getInstance(instanceId: string): Promise<FetchInstanceResponse>;

  /** PATCH /v2/service_instances/:instance_id */
  update(
    instanceId: string,
    details: UpdateRequest,
    options: RequestOptions,
  ): Promise<Reply<200 | 202, Record<string, never> | AsyncOperationResponse>>;

  /** DELETE /v2/service_instances/:instance_id */
  deprovision(
    instanceId: string,
    details: DeleteDetails,
    options: RequestOptions,
  ): Promise<Reply<202, AsyncOperationResponse>>;

  /** GET /v2/service_instances/:instance_id/last_operation */
  lastOperation(instanceId: string, details: PollDetails): Promise<LastOperationReply>;

  /** PUT /v2/service_instances/:instance_id/service_bindings/:binding_id */
  bind(
    instanceId: string,
    bindingId: string,
    details: BindRequest,
    options: RequestOptions,
  ): Promise<Reply<200 | 201 | 202, BindResponse | AsyncOperationResponse>>;

  /** GET /v2/service_instances/:instance_id/service_bindings/:binding_id */
  getBinding(instanceId: string, bindingId: string): Promise<FetchBindingResponse>;

  /** DELETE /v2/service_instances/:instance_id/service_bindings/:binding_id */
  unbind(
    instanceId: string,
    bindingId: string,
    details: DeleteDetails,
    options: RequestOptions,
  ): Promise<Reply<200 | 202, Record<string, never> | AsyncOperationResponse>>;

  /** GET /v2/service_instances/:instance_id/service_bindings/:binding_id/last_operation */
  lastBindingOperation(instanceId: string, bindingId: string, details: PollDetails): Promise<LastOperationReply>;
}
