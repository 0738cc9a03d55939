import { isDeepStrictEqual } from 'node:util';
import {
  formatApiVersion,
  type ApiMinor,
  type CatalogResponse,
  type ServiceOffering,
  type ServicePlan as OsbPlan,
} from '../../osb/index.js';
import {
  API_VERSION,
  ConditionType,
  FINALIZER,
  LABEL,
  OSB_API_VERSION_ANNOTATION,
  Reason,
  type OwnerReference,
  type ServiceBroker,
  type ServiceBrokerStatus,
  type ServiceClass,
  type ServiceInstance,
  type ServicePlan,
} from '../api/v1beta1.js';
import { scopeOfBroker, type CatalogScope } from '../catalog-scope.js';
import { classProperties, matches, parsePredicate, planProperties, RestrictionError } from '../catalog-restrictions.js';
import { isFailed, isReady, putCondition, removeCondition } from '../conditions.js';
import { now } from '../clock.js';
import type { ControllerServices } from '../controller-services.js';
import { BY_REF } from '../informers.js';
import { BrokerAuthError } from '../osb-client/broker-authorization.js';
import { KubeApiError } from '../kube/kube-client.js';
import { objectKey, type Resource } from '../kube/resources.js';
import { escapedName, labelValue } from '../names.js';
import { describeOutcome, fetchCatalog, isVersionRefused, type CatalogFetch } from '../osb-client/osb-client.js';
import { pinnedApiMinor, versionsToOffer } from '../osb-version.js';
import type { ReconcileResult } from '../work-queue.js';
import { RETRY_TIMEOUT_MESSAGE, pastRetryDuration, removeFinalizer } from './common.js';

/** A catalog the controller cannot turn into classes and plans (ErrorSyncingCatalog). */
class CatalogSyncError extends Error {
  override name = 'CatalogSyncError';
}

/**
 * ClusterServiceBroker and ServiceBroker: fetch the catalog (OSB GET /v2/catalog) on create, on a
 * spec change (`relistRequests++`) and every relist period; create, update and flag the classes
 * and plans; delete flagged ones nobody uses; on delete remove them all, then the finalizer.
 */
export class BrokerReconciler {
  constructor(
    private readonly ctx: ControllerServices,
    private readonly resource: Resource,
  ) {}

  async reconcile(key: string): Promise<ReconcileResult | void> {
    const broker = this.ctx.informerOf<ServiceBroker>(this.resource).get(key);
    if (!broker) return;
    const scope = scopeOfBroker(broker);
    if (broker.metadata.deletionTimestamp) return this.reconcileDelete(broker, scope);

    let current = broker;
    if (!current.metadata.finalizers?.includes(FINALIZER)) {
      current = await this.ctx.objects.updateObject(this.resource, current, (copy) => {
        copy.metadata.finalizers = [...(copy.metadata.finalizers ?? []), FINALIZER];
        return true;
      });
    }

    const status = current.status ?? {};
    const interval = this.relistIntervalMs(current);
    const due =
      status.reconciledGeneration !== current.metadata.generation ||
      !isReady(status.conditions) ||
      versionStale(status, pinnedApiMinor(current)) ||
      (interval !== undefined && Date.now() >= Date.parse(status.lastCatalogRetrievalTime ?? '') + interval);
    // A terminal Failed (retry timeout) waits for a spec change.
    const stopped = isFailed(status.conditions) && status.reconciledGeneration === current.metadata.generation;
    if (!due || stopped) {
      // Flagged entries whose last instance went are deleted whatever the relist behaviour: in the
      // original the class and plan reconcilers do it, not the relist.
      await this.removeUnused(current, scope);
      // relistBehavior Manual: only a spec change relists.
      if (interval === undefined || stopped) return;
      const next = Date.parse(status.lastCatalogRetrievalTime ?? '') + interval - Date.now();
      return { requeueAfterMs: Math.max(next, 1000) };
    }
    return this.relist(current, scope, interval);
  }

  /** relistDuration, else the controller default; undefined for relistBehavior Manual. */
  private relistIntervalMs(broker: ServiceBroker): number | undefined {
    if (broker.spec.relistBehavior === 'Manual') return undefined;
    const parsed = broker.spec.relistDuration ? parseDuration(broker.spec.relistDuration) : undefined;
    // A floor, so a tenant's `relistDuration: 1ms` cannot make a catalog-fetch loop.
    return Math.max(
      parsed && parsed > 0 ? parsed : this.ctx.config.brokerRelistIntervalMs,
      this.ctx.config.minRelistIntervalMs,
    );
  }

  /**
   * Fetches the catalog, negotiating the OSB version: 2.17 first, one minor version lower on
   * each 412, down to 2.13 (or only the pinned one). Every relist negotiates again from 2.17, so
   * an upgraded broker is noticed; the agreed version goes into the status write the relist
   * makes anyway, so negotiating costs no writes, only a 412 per version the broker lacks.
   */
  private async relist(
    broker: ServiceBroker,
    scope: CatalogScope,
    interval: number | undefined,
  ): Promise<ReconcileResult | void> {
    const pinned = pinnedApiMinor(broker);
    if (typeof pinned === 'object') return this.invalidPin(broker, pinned.invalid);
    let catalog: CatalogResponse;
    let minor: ApiMinor;
    try {
      const client = await this.ctx.osbClients.clientOf(broker, true);
      const fetched = await fetchCatalog(client, versionsToOffer(pinned));
      const { outcome } = fetched;
      if (outcome.kind !== 'response' || outcome.status !== 200 || !isCatalog(outcome.body)) {
        return this.fetchFailed(
          broker,
          `Error fetching catalog. Error getting broker catalog: ${catalogFailure(fetched, pinned !== undefined)}`,
        );
      }
      catalog = outcome.body;
      minor = fetched.minor;
    } catch (error) {
      if (error instanceof BrokerAuthError) {
        this.ctx.events.record(broker, 'Warning', Reason.ErrorGettingAuthCredentials, error.message);
        return this.fetchFailed(
          broker,
          `Error fetching catalog. Error getting broker auth credentials: ${error.message}`,
        );
      }
      throw error;
    }

    try {
      const counts = await this.syncCatalog(broker, scope, catalog);
      await this.removeUnused(broker, scope);
      await this.writeStatus(broker, (s) => {
        s.conditions = removeCondition(s.conditions, ConditionType.Failed);
        putCondition(
          s,
          ConditionType.Ready,
          'True',
          Reason.FetchedCatalog,
          'Successfully fetched catalog entries from broker.',
        );
        s.reconciledGeneration = broker.metadata.generation;
        s.lastCatalogRetrievalTime = now();
        s.osbApiVersion = formatApiVersion(minor);
        if (pinned === undefined) delete s.osbApiVersionPinned;
        else s.osbApiVersionPinned = true;
        delete s.operationStartTime;
      });
      this.ctx.logger.info(
        { broker: objectKey(broker.metadata), osbApiVersion: formatApiVersion(minor), ...counts },
        'catalog synced',
      );
    } catch (error) {
      if (error instanceof CatalogSyncError || error instanceof RestrictionError) {
        await this.writeStatus(broker, (s) => {
          putCondition(
            s,
            ConditionType.Ready,
            'False',
            Reason.ErrorSyncingCatalog,
            `Error syncing catalog from ServiceBroker: ${error.message}`,
          );
        });
        return { backoff: true };
      }
      throw error;
    }
    return interval === undefined ? undefined : { requeueAfterMs: interval };
  }

  /** An annotation that names no version: reported, not retried (editing it brings the broker back). */
  private async invalidPin(broker: ServiceBroker, message: string): Promise<void> {
    await this.writeStatus(broker, (s) => {
      putCondition(s, ConditionType.Ready, 'False', Reason.InvalidSpec, message);
    });
  }

  private async fetchFailed(broker: ServiceBroker, message: string): Promise<ReconcileResult> {
    const started = broker.status?.operationStartTime ?? now();
    if (pastRetryDuration(this.ctx, started)) {
      await this.writeStatus(broker, (s) => {
        putCondition(s, ConditionType.Ready, 'False', Reason.ErrorFetchingCatalog, message);
        putCondition(s, ConditionType.Failed, 'True', Reason.ErrorReconciliationRetryTimeout, RETRY_TIMEOUT_MESSAGE);
        s.reconciledGeneration = broker.metadata.generation;
        delete s.operationStartTime;
      });
      return {};
    }
    await this.writeStatus(broker, (s) => {
      putCondition(s, ConditionType.Ready, 'False', Reason.ErrorFetchingCatalog, message);
      s.operationStartTime = started;
    });
    return { backoff: true };
  }

  private async syncCatalog(
    broker: ServiceBroker,
    scope: CatalogScope,
    catalog: CatalogResponse,
  ): Promise<{ classes: number; plans: number }> {
    const sync = this.syncTarget(broker, scope);
    // The whole catalog is converted and filtered before anything is written, so a catalog the
    // controller cannot use changes nothing (convertAndFilterCatalog).
    const accepted = acceptedServices(sync, catalog);
    const kept = { classes: new Set<string>(), plans: new Set<string>() };
    for (const entry of accepted) await this.writeClassAndPlans(sync, entry, kept);
    await this.flagMissing(sync, kept);
    return { classes: kept.classes.size, plans: kept.plans.size };
  }

  /** What a relist of this broker works on: its scope, its restrictions and its cached classes and plans. */
  private syncTarget(broker: ServiceBroker, scope: CatalogScope): SyncTarget {
    const brokerName = broker.metadata.name;
    const namespace = broker.metadata.namespace;
    return {
      scope,
      brokerName,
      namespace,
      classPredicates: (broker.spec.catalogRestrictions?.serviceClass ?? []).map(parsePredicate),
      planPredicates: (broker.spec.catalogRestrictions?.servicePlan ?? []).map(parsePredicate),
      classes: this.ctx.informerOf<ServiceClass>(scope.class).list(namespace),
      plans: this.ctx.informerOf<ServicePlan>(scope.plan).list(namespace),
      owner: {
        apiVersion: API_VERSION,
        kind: broker.kind ?? scope.broker.kind,
        name: brokerName,
        uid: broker.metadata.uid ?? '',
        controller: true,
        blockOwnerDeletion: false,
      },
    };
  }

  /** Creates or updates the class of an accepted service and its accepted plans. */
  private async writeClassAndPlans(sync: SyncTarget, entry: AcceptedService, kept: Kept): Promise<void> {
    const { scope, brokerName, namespace, plans, owner } = sync;
    const { service, existingClass, className, acceptedPlans } = entry;
    const classSpec = {
      ...withoutFields(existingClass?.spec, CLASS_FIELDS_FROM_CATALOG),
      externalName: service.name,
      externalID: service.id,
      description: service.description,
      bindable: service.bindable,
      bindingRetrievable: service.bindings_retrievable ?? false,
      planUpdatable: service.plan_updateable ?? false,
      ...(service.metadata ? { externalMetadata: service.metadata } : {}),
      ...(service.tags ? { tags: service.tags } : {}),
      ...(service.requires ? { requires: service.requires } : {}),
      [scope.brokerNameField]: brokerName,
    };
    const classLabels = {
      [LABEL.externalId]: labelValue(service.id),
      [LABEL.externalName]: labelValue(service.name),
      [scope.brokerNameLabel]: labelValue(brokerName),
    };
    await this.upsertEntry<ServiceClass>(scope.class, existingClass, {
      metadata: { name: className, ...(namespace ? { namespace } : {}), labels: classLabels, ownerReferences: [owner] },
      spec: classSpec as ServiceClass['spec'],
    });
    kept.classes.add(className);

    for (const plan of acceptedPlans) {
      const planName = existingPlanName(plans, plan, className) ?? escapedName(plan.id);
      const existingPlan = plans.find((p) => p.metadata.name === planName);
      if (existingPlan && existingPlan.spec[scope.brokerNameField] !== brokerName) {
        throw new CatalogSyncError(
          `${scope.plan.kind} "${planName}" already exists for Broker "${existingPlan.spec[scope.brokerNameField]}"`,
        );
      }
      const planSpec = {
        ...withoutFields(existingPlan?.spec, PLAN_FIELDS_FROM_CATALOG),
        ...convertPlan(plan),
        [scope.brokerNameField]: brokerName,
        [scope.classRefField]: { name: className },
      };
      const planLabels = {
        [LABEL.externalId]: labelValue(plan.id),
        [LABEL.externalName]: labelValue(plan.name),
        [scope.brokerNameLabel]: labelValue(brokerName),
        [scope.cluster ? LABEL.clusterClassRef : LABEL.classRef]: labelValue(className),
      };
      await this.upsertEntry<ServicePlan>(scope.plan, existingPlan, {
        metadata: { name: planName, ...(namespace ? { namespace } : {}), labels: planLabels, ownerReferences: [owner] },
        spec: planSpec as ServicePlan['spec'],
      });
      kept.plans.add(planName);
    }
  }

  /** Entries of this broker missing from the catalog are flagged, not deleted (instances may use them). */
  private async flagMissing({ scope, brokerName, classes, plans }: SyncTarget, kept: Kept): Promise<void> {
    const ours = (entry: ServiceClass | ServicePlan) =>
      entry.spec[scope.brokerNameField] === brokerName && isOwnedBy(entry, brokerName);
    for (const plan of plans) {
      if (ours(plan) && !kept.plans.has(plan.metadata.name)) await this.flagRemoved(scope.plan, plan, true);
    }
    for (const cls of classes) {
      if (ours(cls) && !kept.classes.has(cls.metadata.name)) await this.flagRemoved(scope.class, cls, true);
    }
  }

  private async upsertEntry<T extends ServiceClass | ServicePlan>(
    resource: Resource,
    existing: T | undefined,
    desired: T,
  ): Promise<void> {
    // A write the API server refuses is the broker's ErrorSyncingCatalog, as in the original's
    // "Error reconciling ClusterServiceClass (K8S: … ExternalName: …)", not a silent retry.
    const refused = (error: unknown): unknown =>
      error instanceof KubeApiError
        ? new CatalogSyncError(
            `Error reconciling ${resource.kind} (K8S: "${desired.metadata.name}" ` +
              `ExternalName: "${desired.spec.externalName}"): ${error.message}`,
          )
        : error;
    if (!existing) {
      try {
        await this.ctx.objects.createObject<T>(resource, desired);
      } catch (error) {
        if (!(error instanceof KubeApiError && error.isAlreadyExists)) throw refused(error);
        throw new CatalogSyncError(
          `${resource.kind} "${desired.metadata.name}" already exists; it will be adopted on the next relist`,
        );
      }
      return;
    }
    let current = existing;
    const labels = { ...(existing.metadata.labels ?? {}), ...(desired.metadata.labels ?? {}) };
    if (
      !isDeepStrictEqual(existing.spec, desired.spec) ||
      !isDeepStrictEqual(existing.metadata.labels, labels) ||
      !existing.metadata.ownerReferences?.length
    ) {
      try {
        current = await this.ctx.objects.updateObject(resource, existing, (copy) => {
          copy.spec = desired.spec;
          copy.metadata.labels = labels;
          if (!copy.metadata.ownerReferences?.length) copy.metadata.ownerReferences = desired.metadata.ownerReferences;
          return true;
        });
      } catch (error) {
        throw refused(error);
      }
    }
    if (current.status?.removedFromBrokerCatalog) await this.flagRemoved(resource, current, false);
  }

  private async flagRemoved(resource: Resource, entry: ServiceClass | ServicePlan, removed: boolean): Promise<void> {
    if ((entry.status?.removedFromBrokerCatalog ?? false) === removed) return;
    await this.ctx.objects.writeStatus(resource, entry, (s: { removedFromBrokerCatalog?: boolean }) => {
      s.removedFromBrokerCatalog = removed;
    });
  }

  /**
   * Classes and plans flagged removedFromBrokerCatalog that no instance references any more are
   * deleted (a flagged one still in use is kept, so its instances can be deprovisioned).
   */
  async removeUnused(broker: ServiceBroker, scope: CatalogScope): Promise<void> {
    const namespace = broker.metadata.namespace;
    // The instances cache is indexed by each ref field (BY_REF), under the name it refers to.
    const uses = (field: 'classRefField' | 'instancePlanRefField', name: string): boolean =>
      this.ctx.informers.serviceInstances
        .byIndex(BY_REF[scope[field]], name)
        .some((i: ServiceInstance) => !namespace || i.metadata.namespace === namespace);
    for (const plan of this.ctx.informerOf<ServicePlan>(scope.plan).list(namespace)) {
      if (
        plan.spec[scope.brokerNameField] === broker.metadata.name &&
        plan.status?.removedFromBrokerCatalog &&
        !uses('instancePlanRefField', plan.metadata.name)
      ) {
        await this.ctx.client.delete(scope.plan, plan.metadata.name, plan.metadata.namespace);
      }
    }
    const plansLeft = this.ctx.informerOf<ServicePlan>(scope.plan).list(namespace);
    for (const cls of this.ctx.informerOf<ServiceClass>(scope.class).list(namespace)) {
      if (cls.spec[scope.brokerNameField] !== broker.metadata.name || !cls.status?.removedFromBrokerCatalog) continue;
      if (uses('classRefField', cls.metadata.name)) continue;
      if (
        plansLeft.some(
          (p) => p.spec[scope.classRefField]?.name === cls.metadata.name && !p.status?.removedFromBrokerCatalog,
        )
      )
        continue;
      await this.ctx.client.delete(scope.class, cls.metadata.name, cls.metadata.namespace);
    }
  }

  /** Broker deletion: every plan, then every class of the broker, then the finalizer. Instances are left alone. */
  private async reconcileDelete(broker: ServiceBroker, scope: CatalogScope): Promise<void> {
    if (!broker.metadata.finalizers?.includes(FINALIZER)) return;
    const namespace = broker.metadata.namespace;
    for (const plan of this.ctx.informerOf<ServicePlan>(scope.plan).list(namespace)) {
      if (plan.spec[scope.brokerNameField] === broker.metadata.name)
        await this.ctx.client.delete(scope.plan, plan.metadata.name, namespace);
    }
    for (const cls of this.ctx.informerOf<ServiceClass>(scope.class).list(namespace)) {
      if (cls.spec[scope.brokerNameField] === broker.metadata.name)
        await this.ctx.client.delete(scope.class, cls.metadata.name, namespace);
    }
    this.ctx.osbClients.forget(broker);
    const reason = scope.cluster ? Reason.DeletedClusterServiceBrokerSuccessfully : Reason.DeletedSuccessfully;
    this.ctx.events.record(broker, 'Normal', reason, `The broker ${broker.metadata.name} was deleted successfully.`);
    await removeFinalizer(this.ctx, this.resource, broker);
  }

  private writeStatus(broker: ServiceBroker, mutate: (s: ServiceBrokerStatus) => void): Promise<ServiceBroker> {
    return this.ctx.objects.writeStatus<ServiceBroker, ServiceBrokerStatus>(this.resource, broker, mutate);
  }

  /** Key of the broker that owns a class or plan, for requeueing it. */
  static brokerKeyOf(scope: CatalogScope, entry: ServiceClass | ServicePlan): string | undefined {
    const name = entry.spec[scope.brokerNameField];
    if (!name) return undefined;
    return objectKey({ name, ...(entry.metadata.namespace ? { namespace: entry.metadata.namespace } : {}) });
  }
}

/**
 * A relist is due for the version alone when the annotation and the last catalog fetch disagree:
 * no version recorded yet (a broker from before negotiation), a pin that names another version,
 * a pin added to a negotiated version or removed from a pinned one (osbApiVersionPinned; without
 * it a removed pin would keep its version until the next timed relist, with relistBehavior Manual
 * for good), or an invalid pin (to report it).
 */
function versionStale(status: ServiceBrokerStatus, pinned: ApiMinor | { invalid: string } | undefined): boolean {
  if (typeof pinned === 'object' || status.osbApiVersion === undefined) return true;
  if (pinned === undefined) return status.osbApiVersionPinned === true;
  return status.osbApiVersionPinned !== true || formatApiVersion(pinned) !== status.osbApiVersion;
}

/** Why a catalog fetch failed; a 412 names the versions offered. */
function catalogFailure({ outcome, tried }: CatalogFetch, pinned: boolean): string {
  // A body past OSB_MAX_RESPONSE_BYTES was not read: the message names the limit.
  if (outcome.kind === 'response' && outcome.status === 200 && !outcome.bodyError) return 'the body is not a catalog';
  if (!isVersionRefused(outcome)) return describeOutcome(outcome);
  const versions = tried.map(formatApiVersion).join(', ');
  const refused = pinned
    ? `the broker does not accept OSB API version ${versions} (annotation ${OSB_API_VERSION_ANNOTATION})`
    : `the broker accepts none of the OSB API versions ${versions}`;
  return `${refused}: ${describeOutcome(outcome)}`;
}

function existingPlanName(plans: ServicePlan[], plan: OsbPlan, className: string): string | undefined {
  return plans.find(
    (p) =>
      p.spec.externalID === plan.id && (p.spec.clusterServiceClassRef ?? p.spec.serviceClassRef)?.name === className,
  )?.metadata.name;
}

function isOwnedBy(entry: ServiceClass | ServicePlan, brokerName: string): boolean {
  // Classes without our controller ref are user-defined (`svcat create class`) and never flagged.
  return entry.metadata.ownerReferences?.some((o) => o.controller && o.name === brokerName) ?? false;
}

/**
 * Optional spec fields that come from the broker's catalog: one the catalog no longer has is
 * removed. Other fields of an existing entry (defaultProvisionParameters, set by users) stay.
 */
const CLASS_FIELDS_FROM_CATALOG = ['externalMetadata', 'tags', 'requires'];
const PLAN_FIELDS_FROM_CATALOG = [
  'bindable',
  'externalMetadata',
  'instanceCreateParameterSchema',
  'instanceUpdateParameterSchema',
  'serviceBindingCreateParameterSchema',
  'planUpdatable',
  'maximumPollingDuration',
  'maintenanceInfo',
  'bindingRotatable',
];

function withoutFields<T extends object>(spec: T | undefined, fields: string[]): Partial<T> {
  const copy: Record<string, unknown> = { ...(spec ?? {}) };
  for (const field of fields) delete copy[field];
  return copy as Partial<T>;
}

function convertPlan(plan: OsbPlan): Partial<ServicePlan['spec']> {
  return {
    externalName: plan.name,
    externalID: plan.id,
    description: plan.description,
    free: plan.free ?? false,
    ...(plan.bindable !== undefined ? { bindable: plan.bindable } : {}),
    ...(plan.metadata ? { externalMetadata: plan.metadata } : {}),
    ...(plan.schemas?.service_instance?.create?.parameters
      ? { instanceCreateParameterSchema: plan.schemas.service_instance.create.parameters }
      : {}),
    ...(plan.schemas?.service_instance?.update?.parameters
      ? { instanceUpdateParameterSchema: plan.schemas.service_instance.update.parameters }
      : {}),
    ...(plan.schemas?.service_binding?.create?.parameters
      ? { serviceBindingCreateParameterSchema: plan.schemas.service_binding.create.parameters }
      : {}),
    ...(plan.plan_updateable !== undefined ? { planUpdatable: plan.plan_updateable } : {}),
    ...(plan.maximum_polling_duration !== undefined ? { maximumPollingDuration: plan.maximum_polling_duration } : {}),
    ...(plan.maintenance_info ? { maintenanceInfo: plan.maintenance_info } : {}),
    ...(plan.binding_rotatable !== undefined ? { bindingRotatable: plan.binding_rotatable } : {}),
  };
}

/** Enough of a catalog to name classes and plans: ids and names are strings, plans an array of such. */
function isCatalog(body: unknown): body is CatalogResponse {
  const services = (body as { services?: unknown } | undefined)?.services;
  const named = (o: unknown): boolean =>
    !!o && typeof (o as { id?: unknown }).id === 'string' && typeof (o as { name?: unknown }).name === 'string';
  return (
    Array.isArray(services) &&
    services.every(
      (s: ServiceOffering) => named(s) && (s.plans === undefined || (Array.isArray(s.plans) && s.plans.every(named))),
    )
  );
}

/** metav1.Duration text: "15m", "1h30m", "90s", "500ms". */
export function parseDuration(text: string): number | undefined {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let rest = text.trim();
  if (!rest) return undefined;
  while (rest) {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (!match) return undefined;
    total += Number(match[1]) * units[match[2]!]!;
    rest = rest.slice(match[0].length);
  }
  return total;
}

/** A relist's view of one broker (see BrokerReconciler.syncTarget). */
interface SyncTarget {
  scope: CatalogScope;
  brokerName: string;
  namespace: string | undefined;
  classPredicates: ReturnType<typeof parsePredicate>[];
  planPredicates: ReturnType<typeof parsePredicate>[];
  classes: ServiceClass[];
  plans: ServicePlan[];
  owner: OwnerReference;
}

interface AcceptedService {
  service: ServiceOffering;
  existingClass: ServiceClass | undefined;
  className: string;
  acceptedPlans: OsbPlan[];
}

interface Kept {
  classes: Set<string>;
  plans: Set<string>;
}

/**
 * The services (and their plans) the broker's catalog restrictions accept, checked against the
 * classes other brokers own; throws CatalogSyncError before anything is written.
 */
function acceptedServices(sync: SyncTarget, catalog: CatalogResponse): AcceptedService[] {
  const { scope, brokerName, classes, plans } = sync;
  const accepted: AcceptedService[] = [];
  for (const service of catalog.services) {
    const existingClass =
      classes.find((c) => c.spec.externalID === service.id && c.spec[scope.brokerNameField] === brokerName) ??
      classes.find((c) => c.metadata.name === escapedName(service.id));
    const className = existingClass?.metadata.name ?? escapedName(service.id);
    if (!matches(sync.classPredicates, classProperties(service, className))) continue;
    // Only classes the restrictions accept must have plans (convertClusterServicePlans).
    if (!Array.isArray(service.plans) || service.plans.length === 0) {
      throw new CatalogSyncError(`service "${service.name}" (${service.id}) must have at least one plan`);
    }
    const acceptedPlans = service.plans.filter((plan) => {
      const planName = existingPlanName(plans, plan, className) ?? escapedName(plan.id);
      return matches(sync.planPredicates, planProperties(plan, planName, className, scope.cluster));
    });
    if (acceptedPlans.length === 0) continue;
    if (existingClass && existingClass.spec[scope.brokerNameField] !== brokerName) {
      throw new CatalogSyncError(
        `${scope.class.kind} "${className}" already exists for Broker "${existingClass.spec[scope.brokerNameField]}"`,
      );
    }
    if (existingClass && existingClass.spec.externalID !== service.id) {
      throw new CatalogSyncError(
        `${scope.class.kind} "${className}" already exists with OSB guid "${existingClass.spec.externalID}"`,
      );
    }
    accepted.push({ service, existingClass, className, acceptedPlans });
  }
  return accepted;
}
