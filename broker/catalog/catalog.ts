import { createHash } from 'node:crypto';
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
import type { ValidateFunction } from './json-schema.js';

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
