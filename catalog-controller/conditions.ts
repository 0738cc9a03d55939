import type { Condition, ConditionStatus } from './api/v1beta1.js';
import { ConditionType } from './api/v1beta1.js';
import { now } from './clock.js';

/** Sets a condition in a status object, now (see setCondition). */
export function putCondition(
  status: { conditions?: Condition[] },
  type: string,
  conditionStatus: ConditionStatus,
  reason: string,
  message: string,
): void {
  status.conditions = setCondition(status.conditions, type, conditionStatus, reason, message, now());
}

/**
 * Sets a condition; `lastTransitionTime` changes only when the status does. The list keeps
 * first-insertion order (the printer column reads the last element).
 */
export function setCondition(
  conditions: Condition[] | undefined,
  type: string,
  status: ConditionStatus,
  reason: string,
  message: string,
  now: string,
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === type);
  const existing = index >= 0 ? list[index] : undefined;
  const next: Condition = {
    type,
    status,
    reason,
    message,
    lastTransitionTime: existing && existing.status === status ? existing.lastTransitionTime : now,
  };
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

export function removeCondition(conditions: Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

export function findCondition(conditions: Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

/**
 * RecalculatePrinterColumnStatusFields: the last condition's type when it is True, otherwise
 * its reason. A terminal failure shows `Failed` because Failed is appended after Ready.
 */
export function lastConditionState(conditions: Condition[] | undefined): string | undefined {
  const last = conditions?.[conditions.length - 1];
  if (!last) return undefined;
  return last.status === 'True' ? last.type : last.reason;
}

export const isReady = (conditions: Condition[] | undefined): boolean => isTrue(conditions, ConditionType.Ready);
export const isFailed = (conditions: Condition[] | undefined): boolean => isTrue(conditions, ConditionType.Failed);
