import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import {
  API_MINORS,
  trimToVersion,
  type ApiMinor,
  type CatalogResponse,
  type JsonObject,
  type ServiceOffering,
  type ServicePlan,
} from '../../osb/index.js';
import type { Offering } from '../offerings/offering.js';
import { catalogFileSchema } from './catalog-schema.js';
import { compilePlanSchema, compileSchema, describeErrors, type ValidateFunction } from './json-schema.js';

export const DEFAULT_CATALOG_FILE = fileURLToPath(new URL('./default-catalog.yaml', import.meta.url));

/** A plan with everything the broker needs to serve requests for it, resolved once at load. */
export interface CatalogPlan {
  service: ServiceOffering;
  plan: ServicePlan;
  offering: Offering;
  /** The plan's `x-depot` settings for its offering. */
  settings: JsonObject;
  bindable: boolean;
  planUpdateable: boolean;
  requiresApp: boolean;
  /** `x-depot.credential_lifetime_seconds`: bindings carry metadata.expires_at/renew_before. */
  credentialLifetime?: { seconds: number; renewBeforeSeconds: number };
  /** Plan schemas compiled once (spec: `schemas.service_instance.create.parameters`, …). */
  validate: {
    provision?: ValidateFunction;
    update?: ValidateFunction;
    bind?: ValidateFunction;
  };
}

export class CatalogError extends Error {
  override name = 'CatalogError';
}

/** The GET /v2/catalog answer for one API version: serialised once, with its own ETag. */
export interface CatalogView {
  body: Buffer;
  etag: string;
}

/** The loaded catalog: the served bodies, precomputed per API version, and lookups by id. */
export class Catalog {
  private readonly views = new Map<ApiMinor, CatalogView>();
  private readonly services = new Map<string, ServiceOffering>();
  private readonly plans = new Map<string, CatalogPlan>();

  constructor(
    readonly response: CatalogResponse,
    private readonly entries: CatalogPlan[],
  ) {
    // spec: a request of version 2.N gets only the fields 2.N defines.
    for (const minor of API_MINORS) {
      const body = Buffer.from(JSON.stringify(trimToVersion(response, 'catalog', minor)));
      this.views.set(minor, { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` });
    }
    for (const service of response.services) this.services.set(service.id, service);
    for (const entry of entries) this.plans.set(entry.plan.id, entry);
  }

  /** The catalog as version 2.`minor` defines it. */
  view(minor: ApiMinor): CatalogView {
    return this.views.get(minor)!;
  }

  /** The same catalog without the services of these offerings (those whose server is unusable). */
  without(offerings: readonly Offering[]): Catalog {
    const left = (service: ServiceOffering) =>
      !this.entries.some((entry) => entry.service === service && offerings.includes(entry.offering));
    return new Catalog(
      { services: this.response.services.filter(left) },
      this.entries.filter((entry) => left(entry.service)),
    );
  }

  /** The names of the services whose plans the offering implements. */
  serviceNamesOf(offering: Offering): string[] {
    return [...new Set(this.entries.filter((e) => e.offering === offering).map((e) => e.service.name))];
  }

  service(serviceId: string): ServiceOffering | undefined {
    return this.services.get(serviceId);
  }

  /** Whether a plan of this catalog is implemented by the offering. */
  usesOffering(offering: Offering): boolean {
    for (const entry of this.plans.values()) if (entry.offering === offering) return true;
    return false;
  }

  /** The plan with this id, if it belongs to the service with this id. */
  plan(serviceId: string, planId: string): CatalogPlan | undefined {
    const entry = this.plans.get(planId);
    return entry && entry.service.id === serviceId ? entry : undefined;
  }
}

const validateCatalogFile = compileSchema(catalogFileSchema as unknown as JsonObject);

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

  const file = document as { services: Array<ServiceOffering & { 'x-depot': { offering: string } }> };
  const byName = new Map(offerings.map((o) => [o.name, o]));
  const problems: string[] = [];
  const seenIds = new Set<string>();
  const seenServiceNames = new Set<string>();
  const seenDashboardClients = new Set<string>();
  const plans: CatalogPlan[] = [];
  const served: ServiceOffering[] = [];

  const unique = (id: string, what: string) => {
    if (seenIds.has(id)) problems.push(`${what} id ${JSON.stringify(id)} is used twice`);
    seenIds.add(id);
  };

  for (const [s, raw] of file.services.entries()) {
    const where = `services[${s}] (${raw.name})`;
    unique(raw.id, where);
    if (seenServiceNames.has(raw.name)) problems.push(`${where}: service name used twice`);
    seenServiceNames.add(raw.name);
    // Cloud Foundry: tags may total 2048 characters; dashboard_client ids are unique per broker.
    const tagLength = characters((raw.tags ?? []).join(''));
    if (tagLength > 2048) problems.push(`${where}: tags total ${tagLength} characters; Cloud Foundry allows 2048`);
    if (raw.dashboard_client) {
      if (seenDashboardClients.has(raw.dashboard_client.id))
        problems.push(`${where}: dashboard_client.id is used twice`);
      seenDashboardClients.add(raw.dashboard_client.id);
    }
    const offering = byName.get(raw['x-depot'].offering);
    if (!offering) {
      problems.push(
        `${where}: x-depot.offering ${JSON.stringify(raw['x-depot'].offering)} ` +
          `is not one of: ${[...byName.keys()].join(', ')}`,
      );
      continue;
    }
    const validateSettings = compileSchema({
      $schema: 'http://json-schema.org/draft-07/schema#',
      ...offering.planSettingsSchema,
    });
    const { 'x-depot': _serviceExtension, ...service } = raw;
    const servedPlans: ServicePlan[] = [];
    const planNames = new Set<string>();
    const entries: Array<Omit<CatalogPlan, 'service'>> = [];

    for (const [p, rawPlan] of raw.plans.entries()) {
      const planWhere = `${where}.plans[${p}] (${rawPlan.name})`;
      unique(rawPlan.id, planWhere);
      if (planNames.has(rawPlan.name)) problems.push(`${planWhere}: plan name used twice in this service`);
      planNames.add(rawPlan.name);
      const { 'x-depot': extension = {}, ...plan } = rawPlan as ServicePlan & { 'x-depot'?: JsonObject };
      const {
        requires_app: requiresApp,
        credential_lifetime_seconds: lifetime,
        credential_renew_before_seconds: renewBefore,
        ...settings
      } = extension;
      if (!validateSettings(settings)) {
        problems.push(...describeErrors(validateSettings.errors, 'x-depot').map((e) => `${planWhere}: ${e}`));
      }
      // Cloud Foundry: maintenance_info is at most 2000 characters of JSON.
      if (plan.maintenance_info && characters(JSON.stringify(plan.maintenance_info)) > 2000) {
        problems.push(`${planWhere}: maintenance_info is longer than 2000 characters of JSON`);
      }
      const credentialLifetime =
        typeof lifetime === 'number'
          ? {
              seconds: lifetime,
              // Default: renew when a fifth of the lifetime is left (spec: leave time to rotate).
              renewBeforeSeconds: typeof renewBefore === 'number' ? renewBefore : Math.floor(lifetime / 5),
            }
          : undefined;
      if (renewBefore !== undefined && !credentialLifetime) {
        problems.push(
          `${planWhere}: x-depot.credential_renew_before_seconds needs x-depot.credential_lifetime_seconds`,
        );
      }
      if (credentialLifetime) {
        if (credentialLifetime.renewBeforeSeconds >= credentialLifetime.seconds) {
          problems.push(
            `${planWhere}: x-depot.credential_renew_before_seconds must be less than credential_lifetime_seconds`,
          );
        }
        if (!offering.enforcesCredentialExpiry) {
          problems.push(
            `${planWhere}: offering ${offering.name} cannot make credentials expire; ` +
              'remove x-depot.credential_lifetime_seconds',
          );
        }
      }
      const validate: CatalogPlan['validate'] = {};
      const compile = (schema: JsonObject | undefined, name: string) => {
        if (!schema) return undefined;
        if (JSON.stringify(schema).length > 65536) problems.push(`${planWhere}: schema ${name} is larger than 64 kB`);
        if (/"\$ref"\s*:\s*"(?!#)/.test(JSON.stringify(schema)))
          problems.push(`${planWhere}: schema ${name} has an external $ref`);
        try {
          const validate = compilePlanSchema(schema);
          // Cloud Foundry: 'must have field "type", with value "object"'.
          if (schema.type !== 'object')
            problems.push(`${planWhere}: schema ${name} must have "type": "object" (Cloud Foundry requires it)`);
          return validate;
        } catch (error) {
          problems.push(`${planWhere}: schema ${name} is invalid: ${(error as Error).message}`);
          return undefined;
        }
      };
      validate.provision = compile(plan.schemas?.service_instance?.create?.parameters, 'service_instance.create');
      validate.update = compile(plan.schemas?.service_instance?.update?.parameters, 'service_instance.update');
      validate.bind = compile(plan.schemas?.service_binding?.create?.parameters, 'service_binding.create');
      servedPlans.push(plan);
      entries.push({
        plan,
        offering,
        settings,
        bindable: plan.bindable ?? raw.bindable,
        planUpdateable: plan.plan_updateable ?? raw.plan_updateable ?? false,
        requiresApp: requiresApp === true,
        ...(credentialLifetime ? { credentialLifetime } : {}),
        validate,
      });
    }
    const servedService: ServiceOffering = { ...service, plans: servedPlans };
    served.push(servedService);
    plans.push(...entries.map((entry) => ({ ...entry, service: servedService })));
  }
  if (problems.length > 0) fail(problems);
  return new Catalog({ services: served }, plans);
}
