import type { KubeObject } from '../api/v1beta1.js';
import { KubeApiError, type KubeClient } from './kube-client.js';
import type { Resource } from './resources.js';

const CONFLICT_RETRY_MS = 10_000;
const CONFLICT_RETRY_INTERVAL_MS = 100;

/**
 * Runs `write`; on 409 Conflict (a stale resourceVersion) reads the object again and retries,
 * every 100 ms for up to 10 s, as client-go's RetryOnConflict does.
 */
export async function retryOnConflict<T extends KubeObject>(
  client: KubeClient,
  resource: Resource,
  object: T,
  write: (current: T) => Promise<T>,
): Promise<T> {
  let current = object;
  const deadline = Date.now() + CONFLICT_RETRY_MS;
  for (;;) {
    try {
      return await write(current);
    } catch (error) {
      if (!(error instanceof KubeApiError && error.isConflict) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, CONFLICT_RETRY_INTERVAL_MS));
      const { name, namespace } = current.metadata;
      current = withKind(resource, await client.get<T>(resource, name, namespace));
    }
  }
}

/** Objects from the API may lack apiVersion and kind; events and owner references need them. */
export function withKind<T extends KubeObject>(resource: Resource, object: T): T {
  object.apiVersion ??= resource.apiVersion;
  object.kind ??= resource.kind;
  return object;
}
