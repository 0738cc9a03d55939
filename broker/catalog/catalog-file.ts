import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { JsonObject, ServiceOffering, ServicePlan } from '../../osb/index.js';
import { packagePath } from '../../runtime/package-root.js';
import type { Offering } from '../offerings/offering.js';
import { Catalog, CatalogError, type CatalogPlan } from './catalog.js';
import { catalogFileSchema } from './catalog-schema.js';
import { compilePlanSchema, compileSchema, describeErrors, type ValidateFunction } from './json-schema.js';

export const DEFAULT_CATALOG_FILE = packagePath('broker/catalog/default-catalog.yaml');

const validateCatalogFile = compileSchema(catalogFileSchema as unknown as JsonObject);

type RawService = ServiceOffering & { 'x-depot': { offering: string } };
type RawPlan = ServicePlan & { 'x-depot'?: JsonObject };

/**
 * Reads CATALOG_FILE (JSON or YAML) or the built-in default, adds the services of `extraFiles`
 * (the test offering's catalog, when TEST_OFFERING=enabled), and checks the whole.
 */
export async function loadCatalogFile(
  file: string | undefined,
  offerings: Offering[],
  extraFiles: string[] = [],
): Promise<Catalog> {
  const path = file ?? DEFAULT_CATALOG_FILE;
  let document = await readCatalogDocument(path);
  for (const extra of extraFiles) document = withServicesOf(document, await readCatalogDocument(extra), extra);
  return buildCatalog(document, offerings, [path, ...extraFiles].join(' + '));
}

async function readCatalogDocument(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new CatalogError(`cannot read the catalog file ${path}: ${(error as Error).message}`);
  }
  try {
    return parseYaml(text, { merge: true }); // YAML is a superset of JSON
  } catch (error) {
    throw new CatalogError(`the catalog file ${path} is not valid YAML or JSON: ${(error as Error).message}`);
  }
}

/**
 * The services of the extra file appended to those of `document`. A main document without a
 * `services` list is left as it is, for buildCatalog to report.
 */
function withServicesOf(document: unknown, extra: unknown, extraPath: string): unknown {
  const added = servicesOf(extra);
  if (!added) throw new CatalogError(`the catalog file ${extraPath} has no list of services`);
  const base = servicesOf(document);
  return base ? { ...(document as object), services: [...base, ...added] } : document;
}

function servicesOf(document: unknown): unknown[] | undefined {
  const list =
    document !== null && typeof document === 'object' ? (document as { services?: unknown }).services : undefined;
  return Array.isArray(list) ? list : undefined;
}

/** Length in code points, as Cloud Foundry (Ruby) counts it. */
function characters(text: string): number {
  return [...text].length;
}

/** Checks a catalog document and resolves each plan's offering, settings and schemas. */
export function buildCatalog(document: unknown, offerings: Offering[], source = 'catalog'): Catalog {
  const fail = (problems: string[]): never => {
    throw new CatalogError(`${source} is not a valid catalog:\n  - ${problems.join('\n  - ')}`);
  };
  if (!validateCatalogFile(document)) fail(describeErrors(validateCatalogFile.errors, ''));
  const check = new CatalogCheck(offerings);
  const served: ServiceOffering[] = [];
  const plans: CatalogPlan[] = [];
  for (const [s, raw] of (document as { services: RawService[] }).services.entries()) {
    const built = check.service(raw, `services[${s}] (${raw.name})`);
    if (!built) continue;
    served.push(built.service);
    plans.push(...built.plans);
  }
  if (check.problems.length > 0) fail(check.problems);
  return new Catalog({ services: served }, plans);
}

/** One pass of checks over a catalog document: what spans the document, and each service and plan. */
class CatalogCheck {
  readonly problems: string[] = [];
  private readonly ids = new Set<string>();
  private readonly serviceNames = new Set<string>();
  private readonly dashboardClients = new Set<string>();
  private readonly byName: Map<string, Offering>;

  constructor(offerings: Offering[]) {
    this.byName = new Map(offerings.map((o) => [o.name, o]));
  }

  /** The service as served (without `x-depot`) and its plans, or undefined when it has no offering. */
  service(raw: RawService, where: string): { service: ServiceOffering; plans: CatalogPlan[] } | undefined {
    this.unique(raw.id, where);
    if (this.serviceNames.has(raw.name)) this.problems.push(`${where}: service name used twice`);
    this.serviceNames.add(raw.name);
    // Cloud Foundry: tags may total 2048 characters; dashboard_client ids are unique per broker.
    const tagLength = characters((raw.tags ?? []).join(''));
    if (tagLength > 2048) this.problems.push(`${where}: tags total ${tagLength} characters; Cloud Foundry allows 2048`);
    if (raw.dashboard_client) {
      if (this.dashboardClients.has(raw.dashboard_client.id)) {
        this.problems.push(`${where}: dashboard_client.id is used twice`);
      }
      this.dashboardClients.add(raw.dashboard_client.id);
    }
    const offering = this.byName.get(raw['x-depot'].offering);
    if (!offering) {
      this.problems.push(
        `${where}: x-depot.offering ${JSON.stringify(raw['x-depot'].offering)} ` +
          `is not one of: ${[...this.byName.keys()].join(', ')}`,
      );
      return undefined;
    }
    const validateSettings = compileSchema({
      $schema: 'http://json-schema.org/draft-07/schema#',
      ...offering.planSettingsSchema,
    });
    const planNames = new Set<string>();
    const entries = raw.plans.map((rawPlan: RawPlan, p) => {
      const planWhere = `${where}.plans[${p}] (${rawPlan.name})`;
      this.unique(rawPlan.id, planWhere);
      if (planNames.has(rawPlan.name)) this.problems.push(`${planWhere}: plan name used twice in this service`);
      planNames.add(rawPlan.name);
      return this.plan(rawPlan, raw, offering, validateSettings, planWhere);
    });
    const { 'x-depot': _serviceExtension, ...service } = raw;
    const served: ServiceOffering = { ...service, plans: entries.map((entry) => entry.plan) };
    return { service: served, plans: entries.map((entry) => ({ ...entry, service: served })) };
  }

  private unique(id: string, what: string): void {
    if (this.ids.has(id)) this.problems.push(`${what} id ${JSON.stringify(id)} is used twice`);
    this.ids.add(id);
  }

  private plan(
    rawPlan: RawPlan,
    service: RawService,
    offering: Offering,
    validateSettings: ValidateFunction,
    where: string,
  ): Omit<CatalogPlan, 'service'> {
    const { 'x-depot': extension = {}, ...plan } = rawPlan;
    const {
      requires_app: requiresApp,
      credential_lifetime_seconds: lifetime,
      credential_renew_before_seconds: renewBefore,
      ...settings
    } = extension;
    if (!validateSettings(settings)) {
      this.problems.push(...describeErrors(validateSettings.errors, 'x-depot').map((e) => `${where}: ${e}`));
    }
    // Cloud Foundry: maintenance_info is at most 2000 characters of JSON.
    if (plan.maintenance_info && characters(JSON.stringify(plan.maintenance_info)) > 2000) {
      this.problems.push(`${where}: maintenance_info is longer than 2000 characters of JSON`);
    }
    const credentialLifetime = this.credentialLifetime(lifetime, renewBefore, offering, where);
    return {
      plan,
      offering,
      settings,
      bindable: plan.bindable ?? service.bindable,
      planUpdateable: plan.plan_updateable ?? service.plan_updateable ?? false,
      requiresApp: requiresApp === true,
      ...(credentialLifetime ? { credentialLifetime } : {}),
      validate: {
        provision: this.schema(plan.schemas?.service_instance?.create?.parameters, 'service_instance.create', where),
        update: this.schema(plan.schemas?.service_instance?.update?.parameters, 'service_instance.update', where),
        bind: this.schema(plan.schemas?.service_binding?.create?.parameters, 'service_binding.create', where),
      },
    };
  }

  /** `x-depot.credential_lifetime_seconds` and `credential_renew_before_seconds`, checked. */
  private credentialLifetime(
    lifetime: unknown,
    renewBefore: unknown,
    offering: Offering,
    where: string,
  ): CatalogPlan['credentialLifetime'] {
    if (typeof lifetime !== 'number') {
      if (renewBefore !== undefined) {
        this.problems.push(
          `${where}: x-depot.credential_renew_before_seconds needs x-depot.credential_lifetime_seconds`,
        );
      }
      return undefined;
    }
    // Default: renew when a fifth of the lifetime is left (spec: leave time to rotate).
    const renewBeforeSeconds = typeof renewBefore === 'number' ? renewBefore : Math.floor(lifetime / 5);
    if (renewBeforeSeconds >= lifetime) {
      this.problems.push(
        `${where}: x-depot.credential_renew_before_seconds must be less than credential_lifetime_seconds`,
      );
    }
    if (!offering.enforcesCredentialExpiry) {
      this.problems.push(
        `${where}: offering ${offering.name} cannot make credentials expire; ` +
          'remove x-depot.credential_lifetime_seconds',
      );
    }
    return { seconds: lifetime, renewBeforeSeconds };
  }

  /** A plan schema compiled once, with Cloud Foundry's registration rules. */
  private schema(schema: JsonObject | undefined, name: string, where: string): ValidateFunction | undefined {
    if (!schema) return undefined;
    const text = JSON.stringify(schema);
    if (text.length > 65536) this.problems.push(`${where}: schema ${name} is larger than 64 kB`);
    if (/"\$ref"\s*:\s*"(?!#)/.test(text)) this.problems.push(`${where}: schema ${name} has an external $ref`);
    try {
      const validate = compilePlanSchema(schema);
      // Cloud Foundry: 'must have field "type", with value "object"'.
      if (schema.type !== 'object') {
        this.problems.push(`${where}: schema ${name} must have "type": "object" (Cloud Foundry requires it)`);
      }
      return validate;
    } catch (error) {
      this.problems.push(`${where}: schema ${name} is invalid: ${(error as Error).message}`);
      return undefined;
    }
  }
}
