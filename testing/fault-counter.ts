import type { Fault, FaultKind, FaultMode } from './faults.js';

/**
 * Counts the attempts of each (mode, operation, instance [, binding]) so that a fault with
 * `times` fails that many attempts and then lets the rest through. In memory, so per broker
 * process: http faults are counted by the API process, job faults by the worker (with the
 * default role `all`, one process). Test-only: it never forgets a key.
 */
export class FaultCounter {
  private readonly attempts = new Map<string, number>();

  /**
   * Counts one attempt. Returns how to describe it ("attempt 2 of 3") when the fault makes it
   * fail, or undefined when the fault's `times` are used up.
   */
  fails(fault: Fault, mode: FaultMode, kind: FaultKind, instanceId: string, bindingId?: string): string | undefined {
    const key = JSON.stringify([mode, kind, instanceId, bindingId ?? null]);
    const attempt = (this.attempts.get(key) ?? 0) + 1;
    this.attempts.set(key, attempt);
    if (fault.times === undefined) return `attempt ${attempt}, fails every time`;
    return attempt <= fault.times ? `attempt ${attempt} of ${fault.times}` : undefined;
  }
}
