import type { Logger } from 'pino';
import type { KubeObject } from '../api/v1beta1.js';
import { cachedObject } from './cached-object.js';
import { KubeApiError, type KubeClient } from './kube-client.js';
import { ObjectStore, labelIndex, labelIndexName, type IndexFunctions } from './object-store.js';
import { collectionPath, objectKey, type Resource } from './resources.js';
import type { WatchHandle } from './watch-stream.js';

/** client-go's reflector: a watch lasts 5 to 10 minutes (random, so informers do not reconnect together). */
function watchTimeoutSeconds(): number {
  return 300 + Math.floor(Math.random() * 300);
}

export interface InformerHandlers<T> {
  /** A new object, or one that changed (also called on resync with the same object). */
  upsert?(object: T, previous: T | undefined): void;
  deleted?(object: T): void;
}

interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export interface InformerOptions<T> {
  labelSelector?: string;
  resyncMs?: number;
  watchTimeoutSeconds?: number;
  /** Labels the reconcilers look objects up by (`byLabel`). */
  indexedLabels?: readonly string[];
  /** Other lookups (`byIndex`): an index's name → the values an object is found under. */
  indexes?: IndexFunctions<T>;
}

/** resourceVersion is an etcd revision here; compare numerically, newest wins. */
function isNewer(candidate: KubeObject, current: KubeObject | undefined): boolean {
  if (!current) return true;
  const a = Number(candidate.metadata.resourceVersion);
  const b = Number(current.metadata.resourceVersion);
  return Number.isNaN(a) || Number.isNaN(b) || a >= b;
}

/**
 * List-then-watch cache of one kind (client-go's reflector and store, small). Reconcilers read
 * from it instead of the API server; the results of their own writes are put in with `observe`
 * so the next pass never acts on a stale copy. The cache holds what cachedObject keeps of each
 * object, indexed by namespace, by the labels in `indexedLabels` and by `indexes`.
 */
export class Informer<T extends KubeObject> {
  private readonly objects: ObjectStore<T>;
  private readonly handlers: InformerHandlers<T>[] = [];
  private resourceVersion = '';
  private stopped = false;
  private abort: WatchHandle | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Consecutive failed watches or lists, for the backoff. */
  private failures = 0;

  constructor(
    private readonly client: KubeClient,
    readonly resource: Resource,
    private readonly logger: Logger,
    private readonly options: InformerOptions<T> = {},
  ) {
    const labels = (options.indexedLabels ?? []).map((label) => labelIndex<T>(label));
    this.objects = new ObjectStore<T>(Object.assign({}, ...labels, options.indexes));
  }

  on(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
  }

  get(key: string): T | undefined {
    return this.objects.get(key);
  }

  /** Every object, or those of one namespace. */
  list(namespace?: string): T[] {
    return this.objects.list(namespace);
  }

  /** The objects whose label `label` (one of `indexedLabels`) is `value`. */
  byLabel(label: string, value: string): T[] {
    return this.objects.byIndex(labelIndexName(label), value);
  }

  /** The objects one of `indexes` finds under `value`. */
  byIndex(index: string, value: string): T[] {
    return this.objects.byIndex(index, value);
  }

  /** Records an object returned by our own write, if it is newer than the cached copy. */
  observe(object: T): void {
    const key = objectKey(object.metadata);
    if (isNewer(object, this.objects.get(key))) this.objects.set(key, cachedObject(object));
  }

  /**
   * Records our last write of an object the API server then deleted (its last finalizer removed):
   * the cached copy, while it is still there, becomes that write, so that a pass before the DELETED
   * event sees no finalizer left to act on. An object whose DELETED came first stays gone.
   */
  observeRemoval(object: T): void {
    const key = objectKey(object.metadata);
    const cached = this.objects.get(key);
    if (cached?.metadata.uid === object.metadata.uid && isNewer(object, cached))
      this.objects.set(key, cachedObject(object));
  }

  /** Resolves once the first list is in the cache. */
  async start(): Promise<void> {
    await this.relist();
    void this.watch();
    if (this.options.resyncMs) {
      this.resyncTimer = setInterval(() => this.resync(), this.options.resyncMs);
      this.resyncTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    clearInterval(this.resyncTimer);
    clearTimeout(this.retryTimer);
  }

  /** Every object again, as client-go's resync does: what was missed gets another look. */
  resync(): void {
    for (const object of this.objects.values()) this.emitUpsert(object, object);
  }

  private async relist(): Promise<void> {
    const { items, resourceVersion } = await this.client.list<T>(this.resource, {
      ...(this.options.labelSelector ? { labelSelector: this.options.labelSelector } : {}),
    });
    const seen = new Set<string>();
    for (const listed of items) {
      const item = cachedObject(listed);
      item.apiVersion ??= this.resource.apiVersion;
      item.kind ??= this.resource.kind;
      const key = objectKey(item.metadata);
      seen.add(key);
      const previous = this.objects.get(key);
      this.objects.set(key, item);
      if (!previous || previous.metadata.resourceVersion !== item.metadata.resourceVersion)
        this.emitUpsert(item, previous);
    }
    for (const [key, object] of [...this.objects.entries()]) {
      if (!seen.has(key)) {
        this.objects.delete(key);
        this.emitDeleted(object);
      }
    }
    this.resourceVersion = resourceVersion;
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    const query: Record<string, string> = { resourceVersion: this.resourceVersion, allowWatchBookmarks: 'true' };
    if (this.options.labelSelector) query.labelSelector = this.options.labelSelector;
    let expired = false;
    try {
      this.abort = await this.client.watch(
        collectionPath(this.resource),
        query,
        this.options.watchTimeoutSeconds ?? watchTimeoutSeconds(),
        (type: string, object: unknown) => {
          const event = { type, object } as WatchEvent<T>;
          if (event.type === 'ERROR') {
            // 410 Gone: our resourceVersion is too old; list again.
            expired = true;
            this.abort?.abort();
            return;
          }
          this.apply(event);
        },
        (error: Error | null) => this.restart(expired, error),
      );
      if (this.stopped) this.abort.abort();
    } catch (error) {
      this.restart(true, error);
    }
  }

  /**
   * A watch the server closed cleanly (its timeout) is opened again at once. A failed watch or
   * list (429, 5xx, a reset, 410) lists again after a backoff of 1 s doubling to 30 s, reset by
   * the next event that arrives, so a struggling API server is not hammered.
   */
  private restart(relist: boolean, error: unknown): void {
    if (this.stopped) return;
    const aborted = error instanceof Error && error.name === 'AbortError';
    if (error && !aborted) {
      relist = true;
      this.failures++;
      this.logger.debug({ err: error, resource: this.resource.plural, failures: this.failures }, 'watch failed');
    }
    const delay = relist ? Math.min(1000 * 2 ** Math.max(this.failures - 1, 0), 30_000) : 0;
    this.retryTimer = setTimeout(() => {
      const next = relist ? this.relist() : Promise.resolve();
      next.then(
        () => this.watch(),
        (listError: unknown) => {
          this.logger.warn(
            {
              err: listError,
              resource: this.resource.plural,
              status: listError instanceof KubeApiError ? listError.status : undefined,
            },
            'list failed; retrying',
          );
          this.restart(true, listError);
        },
      );
    }, delay);
  }

  private apply(event: WatchEvent<T>): void {
    this.failures = 0;
    const resourceVersion = event.object.metadata?.resourceVersion;
    if (resourceVersion) this.resourceVersion = resourceVersion;
    if (event.type === 'BOOKMARK') return;
    const object = cachedObject(event.object);
    object.apiVersion ??= this.resource.apiVersion;
    object.kind ??= this.resource.kind;
    const key = objectKey(object.metadata);
    const previous = this.objects.get(key);
    if (event.type === 'DELETED') {
      // A late DELETED of an object since created again under the same name leaves the new one.
      if (previous && previous.metadata.uid !== object.metadata.uid) return;
      this.objects.delete(key);
      this.emitDeleted(object);
      return;
    }
    // The echo of our own write, already in the cache through `observe`: nothing new to act on.
    if (previous && previous.metadata.resourceVersion === object.metadata.resourceVersion) return;
    if (isNewer(object, previous)) this.objects.set(key, object);
    this.emitUpsert(this.objects.get(key) ?? object, previous);
  }

  private emitUpsert(object: T, previous: T | undefined): void {
    for (const handler of this.handlers) handler.upsert?.(object, previous);
  }

  private emitDeleted(object: T): void {
    for (const handler of this.handlers) handler.deleted?.(object);
  }
}
