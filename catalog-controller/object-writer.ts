import { isDeepStrictEqual } from 'node:util';
import type { Condition, KubeObject } from './api/v1beta1.js';
import type { ConditionEvents } from './condition-events.js';
import { lastConditionState } from './conditions.js';
import type { InformerOf } from './informers.js';
import type { KubeClient } from './kube/kube-client.js';
import { mergePatch } from './kube/merge-patch.js';
import { objectKey, type Resource } from './kube/resources.js';
import { retryOnConflict, withKind } from './kube/retry-on-conflict.js';

/**
 * Writes objects and their status to the API server, retrying on conflict, and puts what was
 * written into the cache at once (its watch event may come later).
 */
export class ObjectWriter {
  constructor(
    private readonly client: KubeClient,
    private readonly informerOf: InformerOf,
    private readonly transitions: ConditionEvents,
  ) {}

  /**
   * Writes `status` through the status subresource. `mutate` is applied to a copy of the
   * status of the cached (newest known) object; nothing is written when it changes nothing.
   * `recalculate` then derives fields from the result, and `lastConditionState` always
   * follows the conditions. A 409 Conflict re-reads the object and re-applies both (for up to
   * 10 s). A change of the Ready condition, or Failed becoming True, is an Event.
   */
  writeStatus<T extends KubeObject & { status?: S }, S extends object>(
    resource: Resource,
    object: T,
    mutate: (status: S, object: T) => void,
    recalculate?: (status: S, object: T) => void,
  ): Promise<T> {
    const fresh = this.informerOf<T>(resource).get(objectKey(object.metadata)) ?? object;
    return retryOnConflict(this.client, resource, fresh, async (current) => {
      const before = (current.status ?? {}) as S;
      const next = structuredClone(before);
      mutate(next, current);
      recalculate?.(next, current);
      const state = lastConditionState(conditionsOf(next));
      if (state) (next as { lastConditionState?: string }).lastConditionState = state;
      stripUndefined(next as unknown as Record<string, unknown>);
      if (isDeepStrictEqual(next, before)) return current;
      const written = await this.client.updateStatus<T>(resource, { ...current, status: next });
      this.informerOf<T>(resource).observe(withKind(resource, written));
      this.transitions.record(written, conditionsOf(before), conditionsOf(next));
      return written;
    });
  }

  /** Creates an object and puts it in the cache at once (its ADDED event may come later). */
  async createObject<T extends KubeObject>(resource: Resource, object: T): Promise<T> {
    const created = withKind(resource, await this.client.create<T>(resource, object));
    this.informerOf<T>(resource).observe(created);
    return created;
  }

  /**
   * Updates the object itself (metadata, spec) with the same conflict handling; `mutate`
   * returns false for "nothing to do". What changed goes as a merge patch that carries the
   * resourceVersion (a 409 when stale, like a PUT), so the fields the cache leaves out
   * (cachedObject: managedFields, the last-applied annotation) stay as they are on the server.
   */
  updateObject<T extends KubeObject>(resource: Resource, object: T, mutate: (copy: T) => boolean): Promise<T> {
    return retryOnConflict(this.client, resource, object, async (current) => {
      const copy = structuredClone(current);
      if (!mutate(copy)) return current;
      const patch = mergePatch(
        current as unknown as Record<string, unknown>,
        copy as unknown as Record<string, unknown>,
      );
      if (Object.keys(patch).length === 0) return current;
      const { name, namespace, resourceVersion } = current.metadata;
      patch.metadata = { ...(patch.metadata as object | undefined), resourceVersion };
      const written = withKind(resource, await this.client.patch<T>(resource, name, namespace, patch));
      // The last finalizer removed: the object is gone, and its DELETED event may already have
      // arrived. It must not come back into the cache, nor stay there with the finalizer.
      const gone = written.metadata.deletionTimestamp && !written.metadata.finalizers?.length;
      if (gone) this.informerOf<T>(resource).observeRemoval(written);
      else this.informerOf<T>(resource).observe(written);
      return written;
    });
  }
}

function conditionsOf(status: object): Condition[] | undefined {
  return (status as { conditions?: Condition[] }).conditions;
}

function stripUndefined(object: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(object)) {
    if (value === undefined) delete object[key];
    else if (value && typeof value === 'object' && !Array.isArray(value)) {
      stripUndefined(value as Record<string, unknown>);
    }
  }
}
