import type { JsonObject } from '../osb/index.js';

/** The operations a test plan can make fail; `last_operation` is the polling endpoint. */
export type FaultKind = 'provision' | 'update' | 'deprovision' | 'bind' | 'unbind' | 'last_operation';

/**
 * Where a fault shows: `http` answers the request itself with `status` before any state
 * changes; `job` accepts the request and fails its operation (last_operation says `failed`).
 */
export type FaultMode = 'http' | 'job';

/** One injected fault, as a plan's `x-depot.faults.<kind>` gives it. */
export interface Fault {
  /** The HTTP status of an `http` fault (400–599); not used by `job` faults. */
  status?: number;
  /** Fail this many attempts, then succeed; absent: fail every attempt. */
  times?: number;
  /** Default `http`. */
  mode?: FaultMode;
}

/** A test plan's `x-depot` settings. */
export interface TestPlanSettings {
  /** How long each job (provision, update, deprovision, bind, unbind) takes; default 0. */
  delay_ms?: number;
  faults?: Partial<Record<FaultKind, Fault>>;
}

const fault = (modes: FaultMode[]): JsonObject => ({
  type: 'object',
  additionalProperties: false,
  properties: {
    status: { type: 'integer', minimum: 400, maximum: 599 },
    times: { type: 'integer', minimum: 1 },
    mode: { enum: modes },
  },
  // An http fault (the default mode) needs the status to answer with.
  if: { required: ['mode'], properties: { mode: { const: 'job' } } },
  else: { required: ['status'] },
});

/** JSON Schema of a test plan's `x-depot` settings (the test offering's planSettingsSchema). */
export const testPlanSettingsSchema: JsonObject = {
  type: 'object',
  additionalProperties: false,
  properties: {
    delay_ms: { type: 'integer', minimum: 0, maximum: 3_600_000 },
    faults: {
      type: 'object',
      additionalProperties: false,
      properties: {
        provision: fault(['http', 'job']),
        update: fault(['http', 'job']),
        deprovision: fault(['http', 'job']),
        bind: fault(['http', 'job']),
        unbind: fault(['http', 'job']),
        // Polling has no job of its own: its faults are http only.
        last_operation: fault(['http']),
      },
    },
  },
};

/** A plan's settings, already checked against testPlanSettingsSchema when the catalog loaded. */
export function testPlanSettings(settings: JsonObject): TestPlanSettings {
  return settings as TestPlanSettings;
}

/** The plan's fault for this operation in this mode, if it has one. */
export function planFault(settings: JsonObject, kind: FaultKind, mode: FaultMode): Fault | undefined {
  const found = testPlanSettings(settings).faults?.[kind];
  return found && (found.mode ?? 'http') === mode ? found : undefined;
}
