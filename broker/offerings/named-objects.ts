/**
 * Orphans: the objects on an offering's server that carry Depot's names. Every name an offering
 * gives derives from an id's digest (idDigest), so a name says which instance, and which binding,
 * it was made for; `depot orphans` compares those digests with the live rows of the state database.
 */

/** A server object with one of an offering's name shapes. */
export interface NamedObject {
  /** What it is, in the offering's words: `database`, `owner_role`, `acl_user`, `vhost`, … */
  kind: string;
  /** Its name on the server, as `depot orphans` prints it. */
  name: string;
  /** The instance digest its name carries: the start of idDigest(instanceId, 24). */
  instanceDigest: string;
  /** The binding digest its name carries, idDigest(bindingId, 12), for a binding's object. */
  bindingDigest?: string;
}

/**
 * The object when `name` has the shape `pattern` (first group: the instance digest; second, if
 * any: the binding digest); undefined for every name Depot did not give.
 */
export function namedObject(kind: string, name: string, pattern: RegExp): NamedObject | undefined {
  const match = pattern.exec(name);
  if (!match?.[1]) return undefined;
  return { kind, name, instanceDigest: match[1], ...(match[2] ? { bindingDigest: match[2] } : {}) };
}

/** The objects among `names` with any of the shapes, kind by kind in the shapes' order. */
export function namedObjects(names: Iterable<string>, shapes: Readonly<Record<string, RegExp>>): NamedObject[] {
  const found = new Map(Object.keys(shapes).map((kind) => [kind, [] as NamedObject[]]));
  for (const name of names) {
    for (const [kind, pattern] of Object.entries(shapes)) {
      const object = namedObject(kind, name, pattern);
      if (object) {
        found.get(kind)!.push(object);
        break;
      }
    }
  }
  return [...found.values()].flat();
}
