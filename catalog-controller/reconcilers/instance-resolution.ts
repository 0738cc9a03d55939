import {
  LABEL,
  Reason,
  type InstanceProperties,
  type ServiceBroker,
  type ServiceClass,
  type ServiceInstance,
  type ServicePlan,
} from '../api/v1beta1.js';
import { scopeOfInstance, type CatalogScope } from '../catalog-scope.js';
import type { ControllerServices } from '../controller-services.js';
import { labelValue } from '../names.js';
import { Blocked, instanceRefs } from './common.js';

/** What an instance resolves to in the catalog. */
export interface Resolved {
  scope: CatalogScope;
  broker: ServiceBroker;
  cls: ServiceClass;
  plan: ServicePlan;
}

/** What a deprovision or a poll needs: the plan only when it still exists. */
export type ResolvedForDelete = Omit<Resolved, 'plan'> & { plan?: ServicePlan };

/** Class, plan and broker from the spec, as the original's webhook and controller did together. */
export function resolveInstance(ctx: ControllerServices, instance: ServiceInstance): Resolved | Blocked {
  const scope = scopeOfInstance(instance);
  if ('invalid' in scope) return new Blocked(Reason.InvalidSpec, scope.invalid, true);
  const namespace = scope.cluster ? undefined : instance.metadata.namespace;
  const named = classNamed(ctx, instance, scope, namespace);
  if (named instanceof Blocked) return named;
  const { cls, way } = named;
  const brokerName = cls.spec[scope.brokerNameField];
  const broker = brokerName
    ? ctx.informerOf<ServiceBroker>(scope.broker).get(namespace ? `${namespace}/${brokerName}` : brokerName)
    : undefined;
  if (!broker) {
    return new Blocked(
      Reason.ReferencesNonexistentBroker,
      `The instance references a non-existent broker "${brokerName}" ` +
        `(through ${scope.class.kind} "${cls.metadata.name}")`,
    );
  }
  const plan = planNamed(ctx, instance, scope, namespace, cls, way);
  if (plan instanceof Blocked) return plan;
  return { scope, broker, cls, plan };
}

/** How the spec names its class, and so its plan: Kubernetes name, external name or external id. */
type NamedBy = 'name' | 'externalName' | 'externalID';

/** The one class the spec names, and how it names it. */
function classNamed(
  ctx: ControllerServices,
  instance: ServiceInstance,
  scope: CatalogScope,
  namespace: string | undefined,
): { cls: ServiceClass; way: NamedBy } | Blocked {
  const spec = instance.spec;
  const f = scope.specFields;
  const classByName = spec[f.className] as string | undefined;
  const classByExternalName = spec[f.classExternalName] as string | undefined;
  const classByExternalId = spec[f.classExternalID] as string | undefined;
  const given = [classByName, classByExternalName, classByExternalId].filter((v) => v).length;
  if (given > 1) {
    return new Blocked(
      Reason.InvalidSpec,
      'spec must name the class exactly one way: by external name, external id or Kubernetes name',
      true,
    );
  }
  const way: NamedBy = classByName ? 'name' : classByExternalName ? 'externalName' : 'externalID';
  const wanted = way === 'name' ? classByName : way === 'externalName' ? classByExternalName : classByExternalId;
  const found = classesNamed(ctx, scope, namespace, way, wanted);
  const asked = classByName ?? classByExternalName ?? classByExternalId;
  if (found.length !== 1) {
    return new Blocked(
      Reason.ReferencesNonexistentServiceClass,
      `The instance references a ${scope.class.kind} that does not exist. ` +
        `References a non-existent ${scope.class.kind} "${asked}" or there is more than one (found: ${found.length})`,
    );
  }
  return { cls: found[0]!, way };
}

/**
 * The plan of `cls` the spec names, the same way as the class (validation of PlanReference); with
 * no plan named, the class's only plan.
 */
function planNamed(
  ctx: ControllerServices,
  instance: ServiceInstance,
  scope: CatalogScope,
  namespace: string | undefined,
  cls: ServiceClass,
  way: NamedBy,
): ServicePlan | Blocked {
  const spec = instance.spec;
  const f = scope.specFields;
  const brokerName = cls.spec[scope.brokerNameField];
  const plans = plansOf(ctx, scope, cls).filter((p) => p.spec[scope.brokerNameField] === brokerName);
  const planByName = spec[f.planName] as string | undefined;
  const planByExternalName = spec[f.planExternalName] as string | undefined;
  const planByExternalId = spec[f.planExternalID] as string | undefined;
  const planAsked = way === 'name' ? planByName : way === 'externalName' ? planByExternalName : planByExternalId;
  const otherWays = [planByName, planByExternalName, planByExternalId].filter((v) => v && v !== planAsked).length;
  if (otherWays > 0) {
    return new Blocked(
      Reason.InvalidSpec,
      'spec must name the plan the same way as the class (external name, external id or Kubernetes name)',
      true,
    );
  }
  if (planAsked === undefined) {
    // The default plan: only when the class has exactly one.
    const live = plans.filter((p) => !p.status?.removedFromBrokerCatalog);
    if (live.length !== 1) {
      return new Blocked(
        Reason.ReferencesNonexistentServicePlan,
        `No plan given and ${scope.class.kind} "${cls.spec.externalName}" has ${live.length} plans; ` +
          `name one with ${String(f.planExternalName)}`,
      );
    }
    return live[0]!;
  }
  const matching = plans.filter((p) => nameOf(p, way) === planAsked);
  if (matching.length !== 1) {
    return new Blocked(
      Reason.ReferencesNonexistentServicePlan,
      `The instance references a ${scope.plan.kind} that does not exist. ` +
        `References a non-existent ${scope.plan.kind} "${planAsked}" of ${scope.class.kind} ` +
        `"${cls.spec.externalName}" or there is more than one (found: ${matching.length})`,
    );
  }
  return matching[0]!;
}

function nameOf(entry: ServiceClass | ServicePlan, way: NamedBy): string | undefined {
  return way === 'name' ? entry.metadata.name : entry.spec[way];
}

/**
 * The classes of the scope (in `namespace` for namespaced ones) named `wanted` the given way:
 * by key, or through the label of the external name or id (as the original looked them up).
 */
function classesNamed(
  ctx: ControllerServices,
  scope: CatalogScope,
  namespace: string | undefined,
  way: NamedBy,
  wanted: string | undefined,
): ServiceClass[] {
  if (wanted === undefined) return [];
  const classes = ctx.informerOf<ServiceClass>(scope.class);
  const candidates =
    way === 'name'
      ? [classes.get(namespace ? `${namespace}/${wanted}` : wanted)]
      : classes.byLabel(way === 'externalName' ? LABEL.externalName : LABEL.externalId, labelValue(wanted));
  return candidates.filter(
    (c): c is ServiceClass => c !== undefined && c.metadata.namespace === namespace && nameOf(c, way) === wanted,
  );
}

/** The plans whose class is `cls`, through the label of their class ref (as the original looked them up). */
function plansOf(ctx: ControllerServices, scope: CatalogScope, cls: ServiceClass): ServicePlan[] {
  return ctx
    .informerOf<ServicePlan>(scope.plan)
    .byLabel(scope.classRefLabel, labelValue(cls.metadata.name))
    .filter(
      (p) => p.metadata.namespace === cls.metadata.namespace && p.spec[scope.classRefField]?.name === cls.metadata.name,
    );
}

/** For delete and poll: the class and broker through the refs the controller recorded; the plan if it still exists. */
export function resolveForDelete(ctx: ControllerServices, instance: ServiceInstance): ResolvedForDelete | Blocked {
  const refs = instanceRefs(ctx, instance);
  if ('invalid' in refs) return new Blocked(Reason.InvalidSpec, refs.invalid);
  if (!refs.cls) {
    const resolved = resolveInstance(ctx, instance);
    if (resolved instanceof Blocked)
      return new Blocked(
        Reason.ReferencesNonexistentServiceClass,
        `The instance references a ${refs.scope.class.kind} that does not exist: ${resolved.message}`,
      );
    return resolved;
  }
  if (!refs.broker)
    return new Blocked(
      Reason.ReferencesNonexistentBroker,
      `The instance references a non-existent broker "${refs.brokerName}"`,
    );
  return { scope: refs.scope, broker: refs.broker, cls: refs.cls, ...(refs.plan ? { plan: refs.plan } : {}) };
}

/**
 * Why the instance may not change from plan `previousPlanId` to the resolved one: the new plan
 * was removed from the catalog, or plan_updateable is false (the current plan's overrides its
 * class's, as the OSB spec says). Undefined when the change is allowed.
 */
export function planChangeRefused(
  ctx: ControllerServices,
  instance: ServiceInstance,
  resolved: Resolved,
  previousPlanId: string,
): Blocked | undefined {
  const { scope, cls, plan } = resolved;
  if (plan.status?.removedFromBrokerCatalog) {
    return new Blocked(
      Reason.ReferencesDeletedServicePlan,
      `The ${scope.plan.kind} "${plan.spec.externalName}" has been deleted; cannot change to it.`,
    );
  }
  // Cluster plans have no namespace; namespaced ones are those of the class, in the instance's.
  const currentPlan = plansOf(ctx, scope, cls).find(
    (p) => p.spec.externalID === previousPlanId && p.spec[scope.brokerNameField] === cls.spec[scope.brokerNameField],
  );
  const updatable = currentPlan?.spec.planUpdatable ?? cls.spec.planUpdatable ?? false;
  if (updatable) return undefined;
  return new Blocked(
    Reason.PlanChangeNotAllowed,
    `The Service Class ${cls.spec.externalName} does not allow plan changes.`,
    true,
  );
}

/** The plan's id and name in the fields of the instance's scope. */
export function planProperties(scope: CatalogScope, planId: string, planName: string | undefined): InstanceProperties {
  return scope.cluster
    ? { clusterServicePlanExternalID: planId, ...(planName ? { clusterServicePlanExternalName: planName } : {}) }
    : { servicePlanExternalID: planId, ...(planName ? { servicePlanExternalName: planName } : {}) };
}
