/**
 * Request and response bodies of the OSB API v2.17 (spec.md). Field names are the spec's.
 * Optional fields are omitted, never sent as `null` (Cloud Foundry rejects `operation: null`).
 */

export type JsonObject = Record<string, unknown>;

// ---- Catalog (spec.md, "Catalog Management") ----

export interface MaintenanceInfo {
  /** Semantic Versioning 2.0 version. */
  version: string;
  description?: string;
}

export interface SchemaParameters {
  parameters: JsonObject;
}

export interface PlanSchemas {
  service_instance?: { create?: SchemaParameters; update?: SchemaParameters };
  service_binding?: { create?: SchemaParameters };
}

export interface ServicePlan {
  id: string;
  name: string;
  description: string;
  metadata?: JsonObject;
  free?: boolean;
  bindable?: boolean;
  binding_rotatable?: boolean;
  plan_updateable?: boolean;
  schemas?: PlanSchemas;
  maximum_polling_duration?: number;
  maintenance_info?: MaintenanceInfo;
}

export interface DashboardClient {
  id: string;
  secret: string;
  redirect_uri?: string;
}

export interface ServiceOffering {
  name: string;
  id: string;
  description: string;
  tags?: string[];
  requires?: Array<'syslog_drain' | 'route_forwarding' | 'volume_mount'>;
  bindable: boolean;
  instances_retrievable?: boolean;
  bindings_retrievable?: boolean;
  allow_context_updates?: boolean;
  metadata?: JsonObject;
  dashboard_client?: DashboardClient;
  plan_updateable?: boolean;
  plans: ServicePlan[];
}

export interface CatalogResponse {
  services: ServiceOffering[];
}

// ---- Operations ----

export type LastOperationState = 'in progress' | 'succeeded' | 'failed';

export interface LastOperationResponse {
  state: LastOperationState;
  description?: string;
  instance_usable?: boolean;
  update_repeatable?: boolean;
}

/** 202 body of every asynchronous operation. */
export interface AsyncOperationResponse {
  operation: string;
  dashboard_url?: string;
}

// ---- Service instances ----

export interface ProvisionRequest {
  service_id: string;
  plan_id: string;
  context?: JsonObject;
  organization_guid: string;
  space_guid: string;
  parameters?: JsonObject;
  maintenance_info?: MaintenanceInfo;
}

export interface PreviousValues {
  service_id?: string;
  plan_id?: string;
  organization_id?: string;
  space_id?: string;
  maintenance_info?: MaintenanceInfo;
}

export interface UpdateRequest {
  service_id: string;
  plan_id?: string;
  context?: JsonObject;
  parameters?: JsonObject;
  previous_values?: PreviousValues;
  maintenance_info?: MaintenanceInfo;
}

export interface InstanceMetadata {
  labels?: JsonObject;
  attributes?: JsonObject;
}

export interface ProvisionResponse {
  dashboard_url?: string;
  operation?: string;
  metadata?: InstanceMetadata;
}

export interface FetchInstanceResponse {
  service_id: string;
  plan_id: string;
  dashboard_url?: string;
  parameters?: JsonObject;
  maintenance_info?: MaintenanceInfo;
  metadata?: InstanceMetadata;
}

// ---- Service bindings ----

export interface BindResource {
  app_guid?: string;
  route?: string;
  [extension: string]: unknown;
}

export interface BindRequest {
  service_id: string;
  plan_id: string;
  context?: JsonObject;
  app_guid?: string;
  bind_resource?: BindResource;
  parameters?: JsonObject;
  predecessor_binding_id?: string;
}

export interface BindingMetadata {
  expires_at?: string;
  renew_before?: string;
}

export interface BindingEndpoint {
  host: string;
  ports: string[];
  protocol?: 'tcp' | 'udp' | 'all';
}

export interface BindResponse {
  metadata?: BindingMetadata;
  credentials?: JsonObject;
  syslog_drain_url?: string;
  route_service_url?: string;
  endpoints?: BindingEndpoint[];
}

export interface FetchBindingResponse extends BindResponse {
  parameters?: JsonObject;
}
