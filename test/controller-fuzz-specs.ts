/**
 * Random ServiceInstance and ServiceBinding specs for test/fuzz-controller.test.ts, generated from
 * the CRDs' schemas (catalog-controller/crds/*.yaml): each member's values come from its schema,
 * with names and ids drawn mostly from what exists (the brokers' classes and plans, the batch's
 * instances, the Secrets the test made) and otherwise made up. A share of the specs break the
 * schema on purpose: the API server refuses those, and they are only counted.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import { anyText, freeObject, invalidValue, validValue, type JsonSchema } from './json-schema-arbitrary.js';

const CRDS = path.resolve(import.meta.dirname, '../catalog-controller/crds');

/** The openAPIV3Schema of a CRD's `spec`. */
export function crdSpecSchema(file: string): JsonSchema {
  const crd = parseYaml(readFileSync(path.join(CRDS, file), 'utf8')) as {
    spec: { versions: Array<{ schema: { openAPIV3Schema: { properties: { spec: JsonSchema } } } }> };
  };
  return crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec;
}

/** What the specs may refer to. */
export interface SpecPools {
  classExternalNames: string[];
  planExternalNames: string[];
  classExternalIds: string[];
  planExternalIds: string[];
  /** Kubernetes names of the (Cluster)ServiceClasses and (Cluster)ServicePlans. */
  classNames: string[];
  planNames: string[];
  /** Secrets in the namespace, and keys of theirs (some hold JSON objects, some do not). */
  secretNames: string[];
  secretKeys: string[];
  /** Each plan with its class: the names of a spec that refers to something that exists. */
  pairs: Array<{ class: CatalogNames; plan: CatalogNames }>;
}

/** How a class or plan can be named: Kubernetes name, external name, external id. */
export interface CatalogNames {
  Name: string;
  ExternalName: string;
  ExternalID: string;
}

/** Mostly one of `known`, sometimes something made up. */
const mostly = (known: string[], madeUp: fc.Arbitrary<string> = anyText): fc.Arbitrary<string> =>
  known.length > 0
    ? fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...known) }, { weight: 1, arbitrary: madeUp })
    : madeUp;

/** External ids: GUIDs, unicode text, empty, longer than brokers take, one that several objects share. */
const externalId: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.uuid() },
  { weight: 2, arbitrary: anyText },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', 'a/b', '..', '%zz', 'x'.repeat(300)) },
  { weight: 1, arbitrary: fc.constant('shared-external-id') },
);

/** What a member named `parameters` holds: any JSON object, sometimes with the keys the Secrets have. */
const parameters = fc.oneof(
  { weight: 3, arbitrary: freeObject() },
  { weight: 1, arbitrary: fc.constantFrom({ from: 'spec' }, { x: 1 }, { credentials: { a: 'b' } }, {}) },
);

function parametersFrom(pools: SpecPools): fc.Arbitrary<unknown> {
  return fc.array(
    fc.record({ secretKeyRef: fc.record({ name: mostly(pools.secretNames), key: mostly(pools.secretKeys) }) }),
    { maxLength: 3 },
  );
}

/** How a spec names its class and plan, cluster-scoped or namespaced, the three ways the API has. */
function naming(pools: SpecPools): fc.Arbitrary<Record<string, string>> {
  const ways: Array<[keyof CatalogNames, string[], string[]]> = [
    ['ExternalName', pools.classExternalNames, pools.planExternalNames],
    ['ExternalID', pools.classExternalIds, pools.planExternalIds],
    ['Name', pools.classNames, pools.planNames],
  ];
  // Mostly a plan of its class; else any class and plan names, existing or not.
  const pair = fc.constantFrom(...pools.pairs);
  const mixed = fc
    .constantFrom(...ways)
    .chain(([way, classes, plans]) =>
      fc.tuple(mostly(classes), mostly(plans)).map(([cls, plan]) => ({ way, cls, plan })),
    );
  const named = fc.oneof(
    {
      weight: 3,
      arbitrary: fc
        .tuple(pair, fc.constantFrom(...ways))
        .map(([p, [way]]) => ({ way, cls: p.class[way], plan: p.plan[way] })),
    },
    { weight: 2, arbitrary: mixed },
  );
  return fc
    .tuple(fc.constantFrom('clusterService', 'service'), named, fc.integer({ min: 0, max: 5 }))
    .map(([scope, { way, cls, plan }, withPlan]) => ({
      [`${scope}Class${way}`]: cls,
      ...(withPlan > 0 ? { [`${scope}Plan${way}`]: plan } : {}),
    }));
}

/** Members of `schema` drawn from it (with the overrides), at most `max` of them, from `keys`. */
function someMembers(
  schema: JsonSchema,
  keys: string[],
  max: number,
  field: (path: string) => fc.Arbitrary<unknown> | undefined,
): fc.Arbitrary<Record<string, unknown>> {
  const all = validValue({ ...schema, required: [] }, { field, unknownMembers: false }) as fc.Arbitrary<
    Record<string, unknown>
  >;
  return fc
    .tuple(all, fc.subarray(keys, { maxLength: max }))
    .map(([object, chosen]) => Object.fromEntries(chosen.filter((k) => k in object).map((k) => [k, object[k]])));
}

/** Values of the ServiceInstance members, by path. */
function instanceField(pools: SpecPools): (path: string) => fc.Arbitrary<unknown> | undefined {
  return (at) => {
    if (at === 'parameters') return parameters;
    if (at === 'parametersFrom') return parametersFrom(pools);
    if (at === 'externalID') return externalId;
    if (/ExternalName$/.test(at)) return mostly([...pools.classExternalNames, ...pools.planExternalNames]);
    if (/ExternalID$/.test(at)) return mostly([...pools.classExternalIds, ...pools.planExternalIds]);
    if (/Name$/.test(at)) return mostly([...pools.classNames, ...pools.planNames]);
    return undefined;
  };
}

/** A ServiceInstance spec: one way of naming class and plan, a few more members, sometimes a schema violation. */
export function instanceSpec(pools: SpecPools): fc.Arbitrary<Record<string, unknown>> {
  const schema = crdSpecSchema('serviceinstances.yaml');
  const field = instanceField(pools);
  const names = Object.keys(schema.properties ?? {});
  const others = names.filter((n) => !/^(cluster)?[sS]ervice(Class|Plan)(ExternalName|ExternalID|Name)$/.test(n));
  const valid = fc
    .tuple(
      naming(pools),
      someMembers(schema, others, 4, field),
      // Now and then a second way of naming: the controller must refuse the spec, not crash.
      fc.option(someMembers(schema, names, 1, field), { freq: 6, nil: undefined }),
    )
    .map(([named, more, clash]) => ({ ...named, ...more, ...(clash ?? {}) }));
  return fc.oneof({ weight: 9, arbitrary: valid }, { weight: 1, arbitrary: broken(schema) });
}

/** Values of the ServiceBinding members, by path. */
function bindingField(pools: SpecPools, instanceNames: string[]): (path: string) => fc.Arbitrary<unknown> | undefined {
  const secretName = fc.oneof(
    { weight: 3, arbitrary: fc.stringMatching(/^[a-z][a-z0-9-]{0,20}[a-z0-9]$/) },
    { weight: 2, arbitrary: fc.constantFrom(...pools.secretNames, ...instanceNames.map((n) => `${n}-secret`)) },
    { weight: 1, arbitrary: fc.constantFrom('', 'UPPER', 'has space', 'a.b', '-x', 'x'.repeat(300)) },
    { weight: 1, arbitrary: anyText },
  );
  return (at) => {
    if (at === 'instanceRef.name') return mostly(instanceNames, fc.constantFrom('missing-instance', '', 'X_Y'));
    if (at === 'parameters') return parameters;
    if (at === 'parametersFrom') return parametersFrom(pools);
    if (at === 'externalID') return externalId;
    if (at === 'secretName') return secretName;
    if (at === 'secretTransforms[].addKeysFrom.secretRef.name') return mostly(pools.secretNames);
    if (at === 'secretTransforms[].addKey.value') return fc.oneof(fc.base64String({ maxLength: 24 }), anyText);
    return undefined;
  };
}

/** A ServiceBinding spec: an instance (of the batch, or none), a few more members, sometimes a schema violation. */
export function bindingSpec(pools: SpecPools, instanceNames: string[]): fc.Arbitrary<Record<string, unknown>> {
  const schema = crdSpecSchema('servicebindings.yaml');
  const field = bindingField(pools, instanceNames);
  const others = Object.keys(schema.properties ?? {}).filter((n) => n !== 'instanceRef');
  const valid = fc
    .tuple(
      validValue(schema.properties!.instanceRef!, { field, unknownMembers: false }, 'instanceRef'),
      someMembers(schema, others, 4, field),
    )
    .map(([instanceRef, more]) => ({ instanceRef, ...more }));
  return fc.oneof({ weight: 9, arbitrary: valid }, { weight: 1, arbitrary: broken(schema) });
}

/** A spec with one thing against the CRD schema (the API server refuses it). */
function broken(schema: JsonSchema): fc.Arbitrary<Record<string, unknown>> {
  return invalidValue(schema)
    .filter((bad) => bad.value !== null && typeof bad.value === 'object' && !Array.isArray(bad.value))
    .map((bad) => bad.value as Record<string, unknown>);
}

/** A change to a spec: members merged into it, or its plan replaced (in the field the spec names it by). */
export type SpecEdit =
  { merge: Record<string, unknown> } | { plan: { name: string; externalName: string; externalID: string } };

/** Applies an edit to a spec. */
export function applyEdit(spec: Record<string, unknown>, edit: SpecEdit): Record<string, unknown> {
  if ('merge' in edit) return { ...spec, ...edit.merge };
  const next = { ...spec };
  const planField = Object.keys(spec).find((k) => /^(cluster)?[sS]ervicePlan(ExternalName|ExternalID|Name)$/.test(k));
  const classField = Object.keys(spec).find((k) => /^(cluster)?[sS]erviceClass(ExternalName|ExternalID|Name)$/.test(k));
  const field = planField ?? classField?.replace('Class', 'Plan');
  if (!field) return next;
  next[field] = field.endsWith('ExternalName')
    ? edit.plan.externalName
    : field.endsWith('ExternalID')
      ? edit.plan.externalID
      : edit.plan.name;
  return next;
}

/** An edit of a ServiceInstance: new parameters, parametersFrom, updateRequests…, another plan or spec merged in. */
export function instanceEdit(pools: SpecPools): fc.Arbitrary<SpecEdit> {
  const schema = crdSpecSchema('serviceinstances.yaml');
  const plan = fc.record({
    name: mostly(pools.planNames),
    externalName: mostly(pools.planExternalNames),
    externalID: mostly(pools.planExternalIds),
  });
  const members = ['parameters', 'parametersFrom', 'updateRequests', 'userInfo', 'externalID'];
  return fc.oneof(
    { weight: 3, arbitrary: someMembers(schema, members, 2, instanceField(pools)).map((merge) => ({ merge })) },
    { weight: 3, arbitrary: plan.map((p) => ({ plan: p })) },
    { weight: 1, arbitrary: instanceSpec(pools).map((merge) => ({ merge })) },
  );
}

/** An edit of a ServiceBinding: new parameters, parametersFrom, secretName or transforms, or another spec merged in. */
export function bindingEdit(pools: SpecPools, instanceNames: string[]): fc.Arbitrary<SpecEdit> {
  const schema = crdSpecSchema('servicebindings.yaml');
  const members = ['parameters', 'parametersFrom', 'secretName', 'secretTransforms', 'userInfo'];
  return fc.oneof(
    {
      weight: 3,
      arbitrary: someMembers(schema, members, 2, bindingField(pools, instanceNames)).map((merge) => ({ merge })),
    },
    { weight: 1, arbitrary: bindingSpec(pools, instanceNames).map((merge) => ({ merge })) },
  );
}
