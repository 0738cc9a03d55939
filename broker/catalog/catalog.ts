import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import type { CatalogResponse, JsonObject, ServiceOffering, ServicePlan } from '../../osb/index.js';
import type { Offering } from '../offerings/offering.js';
import { catalogFileSchema } from './catalog-schema.js';
import { compileSchema, describeErrors, type ValidateFunction } from './json-schema.js';

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

/** The loaded catalog: the served body, precomputed, and lookups by id. */
export class Catalog {
  /** GET /v2/catalog body, serialised once. */
  readonly body: Buffer;
  readonly etag: string;
  private readonly services = new Map<string, ServiceOffering>();
  private readonly plans = new Map<string, CatalogPlan>();

  constructor(
    readonly response: CatalogResponse,
    plans: CatalogPlan[],
  ) {
    this.body = Buffer.from(JSON.stringify(response));
    this.etag = `"${createHash('sha256').update(this.body).digest('base64url').slice(0, 27)}"`;
    for (const service of response.services) this.services.set(service.id, service);
    for (const entry of plans) this.plans.set(entry.plan.id, entry);
  }

  service(serviceId: string): ServiceOffering | undefined {
    return this.services.get(serviceId);
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
export async function loadCatalogFile(file: string | undefined, offerings: Offering[], extraFiles: string[] = []): Promise<Catalog> {
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
  const list = document !== null && typeof document === 'object' ? (document as { services?: unknown }).services : undefined;
  return Array.isArray(list) ? list : undefined;
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
    const offering = byName.get(raw['x-depot'].offering);
    if (!offering) {
      problems.push(
        `${where}: x-depot.offering ${JSON.stringify(raw['x-depot'].offering)} is not one of: ${[...byName.keys()].join(', ')}`,
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
      const { requires_app: requiresApp, ...settings } = extension;
      if (!validateSettings(settings)) {
        problems.push(...describeErrors(validateSettings.errors, 'x-depot').map((e) => `${planWhere}: ${e}`));
      }
      const validate: CatalogPlan['validate'] = {};
      const compile = (schema: JsonObject | undefined, name: string) => {
        if (!schema) return undefined;
        if (JSON.stringify(schema).length > 65536) problems.push(`${planWhere}: schema ${name} is larger than 64 kB`);
        if (/"\$ref"\s*:\s*"(?!#)/.test(JSON.stringify(schema))) problems.push(`${planWhere}: schema ${name} has an external $ref`);
        try {
          return compileSchema(schema);
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
