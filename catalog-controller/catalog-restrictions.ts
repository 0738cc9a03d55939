import type { ServiceOffering, ServicePlan as OsbPlan } from '../osb/index.js';

/**
 * catalogRestrictions predicates (pkg/filter): `<property><op><value>` with op one of `==`,
 * `!=`, `in (a, b)`, `notin (a, b)`. Every predicate of a list must hold.
 */
export type Properties = Record<string, string>;

interface Predicate {
  property: string;
  op: '==' | '!=' | 'in' | 'notin';
  values: string[];
}

export class RestrictionError extends Error {
  override name = 'RestrictionError';
}

export function parsePredicate(text: string): Predicate {
  const set = /^\s*([\w.]+)\s+(in|notin)\s*\(([^)]*)\)\s*$/.exec(text);
  if (set) {
    const values = set[3]!
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '');
    return { property: set[1]!, op: set[2] as 'in' | 'notin', values };
  }
  const cmp = /^\s*([\w.]+)\s*(==|!=|=)\s*(.*?)\s*$/.exec(text);
  if (cmp) return { property: cmp[1]!, op: cmp[2] === '!=' ? '!=' : '==', values: [cmp[3]!] };
  throw new RestrictionError(
    `catalog restriction "${text}" is not "<property>==<value>", "!=", "in (…)" or "notin (…)"`,
  );
}

export function matches(predicates: Predicate[], properties: Properties): boolean {
  return predicates.every((p) => {
    const value = properties[p.property];
    switch (p.op) {
      case '==':
        return value === p.values[0];
      case '!=':
        return value !== p.values[0];
      case 'in':
        return value !== undefined && p.values.includes(value);
      case 'notin':
        return value === undefined || !p.values.includes(value);
    }
  });
}

export function classProperties(service: ServiceOffering, name: string): Properties {
  return { name, 'spec.externalName': service.name, 'spec.externalID': service.id };
}

export function planProperties(plan: OsbPlan, name: string, className: string, cluster: boolean): Properties {
  return {
    name,
    'spec.externalName': plan.name,
    'spec.externalID': plan.id,
    'spec.free': String(plan.free ?? false),
    [cluster ? 'spec.clusterServiceClass.name' : 'spec.serviceClass.name']: className,
  };
}
