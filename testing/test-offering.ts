import { setTimeout as sleep } from 'node:timers/promises';
import type { JsonObject } from '../osb/index.js';
import { packagePath } from '../runtime/package-root.js';
import {
  PermanentOfferingError,
  type BindResult,
  type BindingRequest,
  type InstanceRequest,
  type Offering,
  type ProvisionResult,
  type UpdateInstanceRequest,
} from '../broker/offerings/offering.js';
import type { FaultCounter } from './fault-counter.js';
import { planFault, testPlanSettings, testPlanSettingsSchema, type FaultKind } from './faults.js';

export const TEST_OFFERING_NAME = 'test';

/** The services of the test offering, added to the catalog when TEST_OFFERING=enabled. */
export const TEST_CATALOG_FILE = packagePath('testing/test-catalog.yaml');

/** What a bind returns when its parameters carry no `credentials` object. */
export const TEST_CREDENTIALS: JsonObject = {
  'special-key-1': 'special-value-1',
  'special-key-2': 'special-value-2',
  port: 5432,
  nested: { a: 1 },
};

/**
 * The `test` offering, for tests of platform integrations (TEST_OFFERING=enabled, never in
 * production). It is a fake on purpose: it creates nothing, and exists so that its plans can
 * inject failures. Each operation waits the plan's `delay_ms`, then fails if the plan has a
 * `job` fault for it (PermanentOfferingError: the operation fails at once, last_operation
 * says `failed`), else succeeds. The plans' `http` faults are answered before any job, by
 * FaultInjectingBroker.
 */
export class TestOffering implements Offering {
  readonly name = TEST_OFFERING_NAME;
  readonly planSettingsSchema = testPlanSettingsSchema;
  /** Its credentials are made up and reach nothing: a lifetime is vacuously honoured. */
  readonly enforcesCredentialExpiry = true;
  readonly server = 'no server (the test offering creates nothing)';
  readonly serverConfigured = false;

  constructor(private readonly counter: FaultCounter) {}

  async provision(request: InstanceRequest): Promise<ProvisionResult> {
    await this.run('provision', request.planSettings, request.instanceId);
    return {};
  }

  /** The target plan's settings decide (a plan change onto a failing plan fails). */
  async update(request: UpdateInstanceRequest): Promise<void> {
    await this.run('update', request.planSettings, request.instanceId);
  }

  async deprovision(request: InstanceRequest): Promise<void> {
    await this.run('deprovision', request.planSettings, request.instanceId);
  }

  async bind(request: BindingRequest): Promise<BindResult> {
    await this.run('bind', request.instance.planSettings, request.instance.instanceId, request.bindingId);
    return { credentials: bindCredentials(request.parameters) };
  }

  async unbind(request: BindingRequest): Promise<void> {
    await this.run('unbind', request.instance.planSettings, request.instance.instanceId, request.bindingId);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}

  private async run(kind: FaultKind, settings: JsonObject, instanceId: string, bindingId?: string): Promise<void> {
    const delay = testPlanSettings(settings).delay_ms ?? 0;
    if (delay > 0) await sleep(delay);
    const fault = planFault(settings, kind, 'job');
    const attempt = fault && this.counter.fails(fault, 'job', kind, instanceId, bindingId);
    if (attempt) throw new PermanentOfferingError(`injected fault: ${kind} failed (${attempt})`);
  }
}

/** The bind request's `parameters.credentials` object if it has one, else TEST_CREDENTIALS. */
export function bindCredentials(parameters: JsonObject): JsonObject {
  const given = parameters.credentials;
  return given !== null && typeof given === 'object' && !Array.isArray(given)
    ? (given as JsonObject)
    : structuredClone(TEST_CREDENTIALS);
}
