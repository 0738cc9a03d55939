import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_CATALOG_FILE } from '../catalog/catalog-file.js';
import type { BrokerConfig } from '../config.js';
import { testExtension } from '../depot.js';
import { AdminError, UsageError } from './errors.js';

export interface NamedPlan {
  id: string;
  name: string;
}

export interface NamedService {
  id: string;
  name: string;
  plans: NamedPlan[];
}

/**
 * The ids and names of the catalog's services and plans, read from the files the broker reads
 * (CATALOG_FILE or the built-in one, and the test catalog with TEST_OFFERING=enabled) without
 * starting any offering: enough to print names and to take names for ids. The broker checks
 * the catalog when it starts; this reads only what it needs.
 */
export class CatalogNames {
  constructor(readonly services: readonly NamedService[]) {}

  static async load(config: Pick<BrokerConfig, 'catalogFile' | 'testOffering'>): Promise<CatalogNames> {
    const extra = (await testExtension(config))?.catalogFile;
    const files = [config.catalogFile ?? DEFAULT_CATALOG_FILE, ...(extra ? [extra] : [])];
    const services = (await Promise.all(files.map(servicesIn))).flat();
    return new CatalogNames(services);
  }

  serviceName(serviceId: string): string | undefined {
    return this.services.find((s) => s.id === serviceId)?.name;
  }

  planName(serviceId: string, planId: string): string | undefined {
    return this.services.find((s) => s.id === serviceId)?.plans.find((p) => p.id === planId)?.name;
  }

  /** The services a --service value names (by id or name); a UsageError when it names none. */
  servicesNamed(value: string, flag: string): NamedService[] {
    const found = this.services.filter((s) => s.id === value || s.name === value);
    if (found.length === 0) {
      throw new UsageError(
        `${flag} ${JSON.stringify(value)} is neither the id nor the name of a service in the catalog ` +
          `(${this.services.map((s) => s.name).join(', ')})`,
      );
    }
    return found;
  }

  /** The plan ids a --plan value names (by id or name) among `services`; a UsageError when none. */
  planIdsNamed(value: string, services: readonly NamedService[], flag: string): string[] {
    const found = services.flatMap((s) => s.plans).filter((p) => p.id === value || p.name === value);
    if (found.length === 0) {
      throw new UsageError(`${flag} ${JSON.stringify(value)} is neither the id nor the name of a plan in the catalog`);
    }
    return found.map((p) => p.id);
  }
}

async function servicesIn(file: string): Promise<NamedService[]> {
  let document: unknown;
  try {
    document = parseYaml(await readFile(file, 'utf8'), { merge: true });
  } catch (error) {
    throw new AdminError(`cannot read the catalog file ${file}: ${(error as Error).message}`);
  }
  const services = (document as { services?: unknown } | null)?.services;
  if (!Array.isArray(services)) throw new AdminError(`the catalog file ${file} has no list of services`);
  return services.map((service: { id?: unknown; name?: unknown; plans?: unknown }) => ({
    id: String(service.id),
    name: String(service.name),
    plans: (Array.isArray(service.plans) ? service.plans : []).map((plan: { id?: unknown; name?: unknown }) => ({
      id: String(plan.id),
      name: String(plan.name),
    })),
  }));
}
