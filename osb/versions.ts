/**
 * What each minor version of the OSB API defines, from 2.13 to 2.17 (spec.md "Changes Since …"
 * and release-notes.md). A sender trims a body to the fields the peer's version defines, so a
 * strict 2.13 peer never sees a field 2.13 does not know.
 */

export type ApiMinor = 13 | 14 | 15 | 16 | 17;

export const MIN_API_MINOR: ApiMinor = 13;
export const MAX_API_MINOR: ApiMinor = 17;
/** Newest first: the order in which a platform offers versions to a broker. */
export const API_MINORS: readonly ApiMinor[] = [17, 16, 15, 14, 13];

/** "2.14" → 14; undefined for anything but a supported "2.N" (spec: "MAJOR.MINOR"). */
export function parseApiVersion(value: string | undefined): ApiMinor | undefined {
  if (value === undefined) return undefined;
  const match = /^2\.(\d{1,3})$/.exec(value.trim());
  if (!match) return undefined;
  const minor = Number(match[1]);
  return minor >= MIN_API_MINOR && minor <= MAX_API_MINOR ? (minor as ApiMinor) : undefined;
}

export function formatApiVersion(minor: ApiMinor): string {
  return `2.${minor}`;
}

/** "2.13 to 2.17", for messages. */
export const SUPPORTED_API_VERSIONS = `${formatApiVersion(MIN_API_MINOR)} to ${formatApiVersion(MAX_API_MINOR)}`;

/**
 * The fields of a body whose presence depends on the version. `since` is the minor version
 * that added the field; `fields` describes the members of an object (or of each object of an
 * array). Fields the table does not name exist in every supported version.
 */
export interface FieldRule {
  since?: ApiMinor;
  fields?: Readonly<Record<string, FieldRule>>;
}

const since = (minor: ApiMinor, fields?: Record<string, FieldRule>): FieldRule =>
  fields ? { since: minor, fields } : { since: minor };

/** maintenance_info, description included (2.15). */
const maintenanceInfo = since(15);

/** profile.md: each context property is mandatory only from the version that introduced it. */
const context: FieldRule = {
  fields: {
    clusterid: since(14),
    instance_name: since(15),
    organization_name: since(15),
    space_name: since(15),
    organization_annotations: since(16),
    space_annotations: since(16),
    instance_annotations: since(16),
    namespace_annotations: since(16),
  },
};

export const VERSIONED_FIELDS = {
  catalog: {
    fields: {
      services: {
        fields: {
          instances_retrievable: since(14),
          bindings_retrievable: since(14),
          allow_context_updates: since(15),
          plans: {
            fields: {
              plan_updateable: since(15),
              maximum_polling_duration: since(15),
              maintenance_info: maintenanceInfo,
              binding_rotatable: since(17),
            },
          },
        },
      },
    },
  },
  provisionRequest: { fields: { context, maintenance_info: maintenanceInfo } },
  updateRequest: {
    fields: {
      context,
      maintenance_info: maintenanceInfo,
      previous_values: { fields: { maintenance_info: maintenanceInfo } },
    },
  },
  bindRequest: { fields: { context, predecessor_binding_id: since(17) } },
  /** 2.14 allowed dashboard_url in an update's answer; 2.16 added instance metadata. */
  provisionResponse: { fields: { metadata: since(16) } },
  updateResponse: { fields: { dashboard_url: since(14), metadata: since(16) } },
  fetchInstance: { fields: { maintenance_info: maintenanceInfo, metadata: since(16) } },
  lastOperation: { fields: { instance_usable: since(16), update_repeatable: since(16) } },
  /** endpoints (2.15); metadata.expires_at (2.16) and metadata.renew_before (2.17). */
  bindResponse: { fields: { endpoints: since(15), metadata: since(16, { renew_before: since(17) }) } },
} as const satisfies Record<string, FieldRule>;

export type VersionedBody = keyof typeof VERSIONED_FIELDS;

/** Features that are endpoints or query parameters rather than fields, by the version that added them. */
export const FEATURE_SINCE = {
  /** GET /v2/service_instances/:id */
  fetchInstance: 14,
  /** GET …/service_bindings/:id */
  fetchBinding: 14,
  /** accepts_incomplete on bind and unbind, and the binding's last_operation endpoint. */
  asyncBindings: 14,
  /** X-Broker-API-Request-Identity */
  requestIdentity: 15,
} as const satisfies Record<string, ApiMinor>;

export function supports(minor: ApiMinor, feature: keyof typeof FEATURE_SINCE): boolean {
  return minor >= FEATURE_SINCE[feature];
}

/**
 * A copy of `body` without the fields that version 2.`minor` does not define (the body itself
 * when it has none). Fields the table does not know are kept.
 */
export function trimToVersion<T>(body: T, kind: VersionedBody, minor: ApiMinor): T {
  return minor >= MAX_API_MINOR ? body : (trim(body, VERSIONED_FIELDS[kind], minor) as T);
}

function trim(value: unknown, rule: FieldRule, minor: ApiMinor): unknown {
  if (!rule.fields || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => trim(item, rule, minor));
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    const childRule = rule.fields[key];
    if (childRule?.since !== undefined && childRule.since > minor) continue;
    out[key] = childRule ? trim(child, childRule, minor) : child;
  }
  return out;
}
