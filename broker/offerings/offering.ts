import type { BindingEndpoint, BindingMetadata, JsonObject, MaintenanceInfo } from '../../osb/index.js';
import type { NamedObject } from './named-objects.js';

/**
 * An offering is the code behind one service in the catalog: it creates and removes the real
 * resources. The broker owns HTTP, state and queues; an offering only sees the operation it
 * is asked to carry out. Every method must be idempotent: a job that died half-way is run
 * again from the start. Adding an offering touches no HTTP or queue code: write a class that
 * implements this interface and list it in `offerings/registry.ts` (docs/writing-an-offering.md).
 */
export interface Offering {
  /** The name the catalog's `x-depot.offering` refers to. */
  readonly name: string;
  /**
   * JSON Schema of the offering's plan settings (`x-depot` on each plan of the catalog file),
   * checked when the catalog is loaded.
   */
  readonly planSettingsSchema: JsonObject;
  /**
   * Whether bind honours `BindingRequest.expiresAt` (the credentials stop working then). A
   * catalog may give a plan a credential lifetime only when its offering does.
   */
  readonly enforcesCredentialExpiry: boolean;
  /** Which server the offering uses, for messages: `Redis at 10.0.0.5:6379 (REDIS_SERVICE_URL)`. */
  readonly server: string;
  /**
   * Whether the operator named the server (its `…_SERVICE_URL` is set). A named server that
   * `ping` finds unusable stops Depot at start; a default one only leaves the offering's
   * services out of the catalog.
   */
  readonly serverConfigured: boolean;

  /** Creates the instance's resources. */
  provision(request: InstanceRequest, context: OperationContext): Promise<ProvisionResult>;
  /**
   * Brings the instance to `request` (plan, parameters and settings). It is an upgrade when
   * `request.maintenanceInfo` differs from `request.previous.maintenanceInfo`: the settings are
   * then the plan's current ones, which the instance has not had yet.
   */
  update(request: UpdateInstanceRequest, context: OperationContext): Promise<void>;
  /** Removes the instance's resources, its bindings' credentials included. */
  deprovision(request: InstanceRequest, context: OperationContext): Promise<void>;
  /** Creates credentials of their own for one binding. */
  bind(request: BindingRequest, context: OperationContext): Promise<BindResult>;
  /** Revokes one binding's credentials and ends the sessions that use them. */
  unbind(request: BindingRequest, context: OperationContext): Promise<void>;

  /**
   * Drift repair: whether the instance's objects and each binding's login are on the server as
   * recorded; what is missing or altered is put back, with the credentials the platform already
   * holds. Idempotent. Throws when the server cannot be asked: the check is tried again next
   * period, and nothing is marked failed. Optional: an offering without it is not checked.
   */
  repair?(instance: InstanceRequest, bindings: RecordedBinding[]): Promise<DriftRepair[]>;

  /**
   * Orphans (`depot orphans`): every object on the server with one of the offering's name shapes,
   * whoever owns it, in an order they can be removed in (what a binding holds before what holds
   * it). Optional, with removeNamedObject: an offering without them is not searched.
   */
  namedObjects?(): Promise<NamedObject[]>;
  /** Removes one object namedObjects() listed, and ends its sessions; idempotent. */
  removeNamedObject?(object: NamedObject): Promise<void>;

  /** Whether the backing server answers and can keep tenants apart (checked at start). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** What the broker lends an operation while it runs. */
export interface OperationContext {
  /**
   * Shows progress in last_operation's `description` while the operation runs ("deleted 40000
   * of about 120000 keys"). It also tells the sweeper the job is alive. One database write a
   * call: call it every second or so, not for every item. It throws OperationEndedError when
   * the operation has ended meanwhile (failed for taking too long, say): let it propagate, so
   * that a job nobody waits for stops changing things.
   */
  reportProgress(description: string): Promise<void>;
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
  /** When the plan sets a credential lifetime: the credentials must stop working at this time. */
  expiresAt?: Date;
}

/** A bound binding as Depot recorded it, for drift repair. */
export interface RecordedBinding {
  request: BindingRequest;
  /** The credentials of the bind response (the platform holds these). */
  credentials: JsonObject;
}

/** An object drift repair put back: `kind` names it (`database`, `role`, `acl_user`, …). */
export interface DriftRepair {
  kind: string;
  bindingId?: string;
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

/** The operation ended while its job still ran (it timed out): the job must stop. */
export class OperationEndedError extends PermanentOfferingError {
  override name = 'OperationEndedError';
}
