import type { Queryable } from '../db/pool.js';
import { idDigest } from '../offerings/endpoint.js';
import type { NamedObject } from '../offerings/named-objects.js';
import type { Offering } from '../offerings/offering.js';
import { recordedBindingIds, recordedInstances, type RecordedBindingId, type RecordedInstance } from './queries.js';

/** A server object with Depot's names that no live instance or binding owns. */
export interface Orphan extends NamedObject {
  offering: string;
  /** The row its name points to, marked deleted (a deprovision or unbind that left it), if any. */
  instanceId?: string;
  bindingId?: string;
}

/** An offering whose server could not be searched. */
export interface SearchFailure {
  offering: string;
  server: string;
  reason: string;
}

interface Owner {
  id: string;
  live: boolean;
}

/**
 * The state database's rows by the digests that offerings' names carry: an instance by the start
 * of idDigest(id, 24) (as long as the name's), a binding by that and idDigest(id, 12).
 */
export class RecordIndex {
  private readonly byLength = new Map<number, Map<string, Owner[]>>();

  constructor(
    private readonly instances: readonly RecordedInstance[],
    private readonly bindings: readonly RecordedBindingId[],
  ) {}

  /** The rows a name points to: its binding's when it carries a binding digest, else its instance's. */
  owners(object: NamedObject): Owner[] {
    const key = object.bindingDigest ? `${object.instanceDigest}:${object.bindingDigest}` : object.instanceDigest;
    return this.index(object.instanceDigest.length).get(key) ?? [];
  }

  private index(length: number): Map<string, Owner[]> {
    let index = this.byLength.get(length);
    if (index) return index;
    index = new Map();
    const add = (key: string, owner: Owner) => index!.set(key, [...(index!.get(key) ?? []), owner]);
    const digests = new Map<string, string>();
    for (const { id, state } of this.instances) {
      const digest = idDigest(id, 24).slice(0, length);
      digests.set(id, digest);
      add(digest, { id, live: state !== 'deleted' });
    }
    for (const { id, instance_id, state } of this.bindings) {
      const digest = digests.get(instance_id) ?? idDigest(instance_id, 24).slice(0, length);
      add(`${digest}:${idDigest(id, 12)}`, { id, live: state !== 'deleted' });
    }
    this.byLength.set(length, index);
    return index;
  }
}

/**
 * The orphans on the offerings' servers. Each server is listed first, then the state database
 * is read: an object that was listed was made after its row was written (operations write their
 * row before the job runs), so no object of an operation running meanwhile is taken for an orphan.
 */
export async function findOrphans(
  db: Queryable,
  offerings: readonly Offering[],
): Promise<{ orphans: Orphan[]; failed: SearchFailure[] }> {
  const listed: Array<{ offering: Offering; objects: NamedObject[] }> = [];
  const failed: SearchFailure[] = [];
  for (const offering of offerings) {
    if (!offering.namedObjects) continue;
    try {
      listed.push({ offering, objects: await offering.namedObjects() });
    } catch (error) {
      failed.push({ offering: offering.name, server: offering.server, reason: (error as Error).message });
    }
  }
  const index = new RecordIndex(await recordedInstances(db), await recordedBindingIds(db));
  const orphans: Orphan[] = [];
  for (const { offering, objects } of listed) {
    for (const object of objects) {
      const owners = index.owners(object);
      if (owners.some((owner) => owner.live)) continue;
      const recorded = owners[0]?.id;
      orphans.push({
        offering: offering.name,
        ...object,
        ...(recorded ? { [object.bindingDigest ? 'bindingId' : 'instanceId']: recorded } : {}),
      });
    }
  }
  return { orphans, failed };
}
