import type { KubeObject } from '../api/v1beta1.js';

/**
 * Indexes beside the namespace one, after client-go's cache.Indexers: an index's name → the
 * values an object is filed under (none to leave it out).
 */
export type IndexFunctions<T> = Record<string, (object: T) => readonly string[]>;

/** The index name under which `labelIndex(label)` files objects by the value of `label`. */
export function labelIndexName(label: string): string {
  return `label:${label}`;
}

/** An index of objects by the value of one label (objects without it are left out). */
export function labelIndex<T extends KubeObject>(label: string): IndexFunctions<T> {
  return {
    [labelIndexName(label)]: (object) => {
      const value = object.metadata.labels?.[label];
      return value === undefined ? [] : [value];
    },
  };
}

/**
 * The informer's objects by key ("namespace/name" or "name"), indexed by namespace and by each
 * of `indexFunctions` (client-go's thread-safe store with its indexer), so that a lookup reads
 * the objects it returns and no others. What an object was filed under is kept with its key, so
 * it is taken out of the same places when it changes or goes, whatever became of the old copy.
 */
export class ObjectStore<T extends KubeObject> {
  private readonly objects = new Map<string, T>();
  private readonly namespaces = new Map<string, Map<string, T>>();
  /** Index name → value → keys. */
  private readonly indexes = new Map<string, Map<string, Set<string>>>();
  /** Key → the [index, value] pairs it is filed under. */
  private readonly filed = new Map<string, Array<[string, string]>>();

  constructor(private readonly indexFunctions: IndexFunctions<T> = {}) {
    for (const name of Object.keys(indexFunctions)) this.indexes.set(name, new Map());
  }

  get size(): number {
    return this.objects.size;
  }

  get(key: string): T | undefined {
    return this.objects.get(key);
  }

  /** Every object, or those of one namespace. */
  list(namespace?: string): T[] {
    if (namespace === undefined) return [...this.objects.values()];
    return [...(this.namespaces.get(namespace)?.values() ?? [])];
  }

  /** The objects an index files under `value`. */
  byIndex(index: string, value: string): T[] {
    const values = this.indexes.get(index);
    if (!values) throw new Error(`no index ${index}`);
    return [...(values.get(value) ?? [])].map((key) => this.objects.get(key)!);
  }

  entries(): IterableIterator<[string, T]> {
    return this.objects.entries();
  }

  values(): IterableIterator<T> {
    return this.objects.values();
  }

  set(key: string, object: T): void {
    const namespace = object.metadata.namespace ?? '';
    let inNamespace = this.namespaces.get(namespace);
    if (!inNamespace) this.namespaces.set(namespace, (inNamespace = new Map()));
    this.objects.set(key, object);
    inNamespace.set(key, object);
    const was = this.filed.get(key) ?? [];
    const now: Array<[string, string]> = [];
    for (const [name, valuesOf] of Object.entries(this.indexFunctions)) {
      for (const value of new Set(valuesOf(object))) now.push([name, value]);
    }
    const same = (a: [string, string], b: [string, string]) => a[0] === b[0] && a[1] === b[1];
    for (const pair of was) if (!now.some((p) => same(p, pair))) this.unfile(key, pair);
    for (const pair of now) {
      if (was.some((p) => same(p, pair))) continue;
      const index = this.indexes.get(pair[0])!;
      let keys = index.get(pair[1]);
      if (!keys) index.set(pair[1], (keys = new Set()));
      keys.add(key);
    }
    if (now.length > 0) this.filed.set(key, now);
    else this.filed.delete(key);
  }

  delete(key: string): void {
    const object = this.objects.get(key);
    if (!object) return;
    this.objects.delete(key);
    const namespace = object.metadata.namespace ?? '';
    const inNamespace = this.namespaces.get(namespace);
    inNamespace?.delete(key);
    if (inNamespace?.size === 0) this.namespaces.delete(namespace);
    for (const pair of this.filed.get(key) ?? []) this.unfile(key, pair);
    this.filed.delete(key);
  }

  private unfile(key: string, [name, value]: [string, string]): void {
    const index = this.indexes.get(name)!;
    const keys = index.get(value);
    keys?.delete(key);
    if (keys?.size === 0) index.delete(value);
  }
}
