import type { BindingEndpoint, BindingMetadata, JsonObject, MaintenanceInfo } from '../../osb/index.js';

/**
 * An offering is the code behind one service in the catalog: it creates and removes the real
 * resources. The broker owns HTTP, state and queues; an offering only sees the operation it
 * is asked to carry out. Every method must be idempotent: a job that died half-way is run
 * again from the start.
 */
export interface Offering {
  /** The name the catalog's `x-depot.offering` refers to. */
  readonly name: string;
  /**
   * JSON Schema of the offering's plan settings (`x-depot` on each plan of the catalog file),
   * checked when the catalog is loaded.
   */
  readonly planSettingsSchema: JsonObject;

  provision(request: InstanceRequest): Promise<ProvisionResult>;
  update(request: UpdateInstanceRequest): Promise<void>;
  deprovision(request: InstanceRequest): Promise<void>;
  bind(request: BindingRequest): Promise<BindResult>;
  unbind(request: BindingRequest): Promise<void>;

  /** Whether the backing server answers (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** What an offering knows about an instance. */
export interface InstanceRequest {
  instanceId: string;
  planName: string;
  /** The plan's `x-depot` settings, already checked against planSettingsSchema. */
  planSettings: JsonObject;
  parameters: JsonObject;
  context: JsonObject;
  maintenanceInfo?: MaintenanceInfo;
}

export interface UpdateInstanceRequest extends InstanceRequest {
  /** The instance as it is before the update. */
  previous: Pick<InstanceRequest, 'planName' | 'planSettings' | 'parameters' | 'maintenanceInfo'>;
}

export interface BindingRequest {
  instance: InstanceRequest;
  bindingId: string;
  parameters: JsonObject;
  appGuid?: string;
}

export interface ProvisionResult {
  dashboardUrl?: string;
}

export interface BindResult {
  credentials: JsonObject;
  endpoints?: BindingEndpoint[];
  metadata?: BindingMetadata;
}

/**
 * An offering failure that will not go away by retrying (bad settings, a refused request):
 * the job fails at once with this description instead of using up its attempts.
 */
export class PermanentOfferingError extends Error {
  override name = 'PermanentOfferingError';
}
