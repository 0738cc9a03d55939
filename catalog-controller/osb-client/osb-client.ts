import http from 'node:http';
import https from 'node:https';
import { randomUUID } from 'node:crypto';
import { urlToHttpOptions } from 'node:url';
import {
  API_VERSION_HEADER,
  MAX_API_MINOR,
  ORIGINATING_IDENTITY_HEADER,
  REQUEST_IDENTITY_HEADER,
  formatApiVersion,
  formatOriginatingIdentity,
  supports,
  trimToVersion,
  type ApiMinor,
  type BindRequest,
  type FEATURE_SINCE,
  type OriginatingIdentity,
  type ProvisionRequest,
  type UpdateRequest,
} from '../../osb/index.js';
import { boundedRequest } from '../bounded-request.js';
import { DeadlineExceededError, ResponseTooLargeError, type CallLimits, type LimitNames } from '../call-limits.js';

/**
 * What came back from a broker call: a response, or none (a timeout, or a transport error). A
 * response whose body passed OSB_MAX_RESPONSE_BYTES keeps its status, has no body, and carries
 * the error in `bodyError`: to the reconcilers it is a response they cannot use, as one that is
 * not JSON. A call past OSB_REQUEST_TIMEOUT_MS is a timeout, whatever had arrived by then.
 */
export type OsbOutcome =
  | { kind: 'response'; status: number; body: unknown; retryAfterSeconds?: number; bodyError?: ResponseTooLargeError }
  | { kind: 'timeout'; message: string }
  | { kind: 'transport'; message: string };

/** The default of OSB_MAX_RESPONSE_BYTES: room for a catalog of a few MB. */
export const DEFAULT_OSB_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/** The variables of the broker calls' limits (catalog-controller/config.ts), for the messages. */
export const OSB_LIMIT_NAMES: LimitNames = {
  peer: 'the broker',
  timeout: 'OSB_REQUEST_TIMEOUT_MS',
  maxResponseBytes: 'OSB_MAX_RESPONSE_BYTES',
};

export interface OsbClientOptions {
  url: string;
  /** `Basic …` or `Bearer …`. */
  authorization?: string;
  caBundle?: string;
  insecureSkipTLSVerify?: boolean;
  /** The whole call (connect, headers, whole body): OSB_REQUEST_TIMEOUT_MS. */
  timeoutMs: number;
  /** The response body's cap: OSB_MAX_RESPONSE_BYTES (default DEFAULT_OSB_MAX_RESPONSE_BYTES). */
  maxResponseBytes?: number;
  /** Called once per request, for metrics and the trace log. */
  observe?: (method: string, status: string, path: string) => void;
  /** The OSB API version spoken, 2.<minor> (default: the newest). */
  minor?: ApiMinor;
}

export type OsbFeature = keyof typeof FEATURE_SINCE;

export interface CallOptions {
  identity?: OriginatingIdentity;
}

/**
 * An OSB client speaking one version, 2.13 … 2.17: one method per endpoint the platform side
 * calls. Bodies carry only the fields that version defines, and endpoints, parameters and
 * headers it lacks are never sent (spec.md: a broker MAY reject fields it does not know).
 */
export class OsbClient {
  private readonly base: URL;
  private readonly agent: http.Agent;
  readonly minor: ApiMinor;

  /** `connection`: the base URL and agent of another client of the same broker (see atVersion). */
  constructor(
    private readonly options: OsbClientOptions,
    connection?: { base: URL; agent: http.Agent },
  ) {
    this.minor = options.minor ?? MAX_API_MINOR;
    this.base = connection?.base ?? new URL(options.url.endsWith('/') ? options.url : `${options.url}/`);
    this.agent =
      connection?.agent ??
      (this.base.protocol === 'https:'
        ? new https.Agent({
            keepAlive: true,
            maxSockets: 32,
            ...(options.caBundle ? { ca: Buffer.from(options.caBundle, 'base64').toString('utf8') } : {}),
            rejectUnauthorized: !options.insecureSkipTLSVerify,
          })
        : new http.Agent({ keepAlive: true, maxSockets: 32 }));
  }

  /** The same broker and connections, speaking 2.<minor>. */
  atVersion(minor: ApiMinor): OsbClient {
    if (minor === this.minor) return this;
    return new OsbClient({ ...this.options, minor }, { base: this.base, agent: this.agent });
  }

  /** Whether this client's version has an endpoint, parameter or header (FEATURE_SINCE). */
  supports(feature: OsbFeature): boolean {
    return supports(this.minor, feature);
  }

  /** GET /v2/catalog */
  catalog(): Promise<OsbOutcome> {
    return this.call('GET', 'v2/catalog');
  }

  /** PUT /v2/service_instances/:instance_id?accepts_incomplete=true */
  provision(instanceId: string, body: ProvisionRequest, options: CallOptions = {}): Promise<OsbOutcome> {
    const trimmed = trimToVersion(body, 'provisionRequest', this.minor);
    return this.call('PUT', `v2/service_instances/${enc(instanceId)}?accepts_incomplete=true`, trimmed, options);
  }

  /** PATCH /v2/service_instances/:instance_id?accepts_incomplete=true */
  update(instanceId: string, body: UpdateRequest, options: CallOptions = {}): Promise<OsbOutcome> {
    const trimmed = trimToVersion(body, 'updateRequest', this.minor);
    return this.call('PATCH', `v2/service_instances/${enc(instanceId)}?accepts_incomplete=true`, trimmed, options);
  }

  /** DELETE /v2/service_instances/:instance_id?service_id&plan_id&accepts_incomplete=true */
  deprovision(instanceId: string, query: PlanQuery, options: CallOptions = {}): Promise<OsbOutcome> {
    return this.call(
      'DELETE',
      `v2/service_instances/${enc(instanceId)}?${planQuery(query)}&accepts_incomplete=true`,
      undefined,
      options,
    );
  }

  /** GET /v2/service_instances/:instance_id/last_operation */
  instanceLastOperation(instanceId: string, query: PollQuery, options: CallOptions = {}): Promise<OsbOutcome> {
    return this.call(
      'GET',
      `v2/service_instances/${enc(instanceId)}/last_operation?${pollQuery(query)}`,
      undefined,
      options,
    );
  }

  /**
   * PUT /v2/service_instances/:instance_id/service_bindings/:binding_id. `acceptsIncomplete`
   * only from 2.14 (asynchronous bindings): an older broker binds synchronously.
   */
  bind(
    instanceId: string,
    bindingId: string,
    body: BindRequest,
    acceptsIncomplete: boolean,
    options: CallOptions = {},
  ): Promise<OsbOutcome> {
    const query = acceptsIncomplete && this.supports('asyncBindings') ? '?accepts_incomplete=true' : '';
    return this.call(
      'PUT',
      `${bindingPath(instanceId, bindingId)}${query}`,
      trimToVersion(body, 'bindRequest', this.minor),
      options,
    );
  }

  /** DELETE /v2/service_instances/:instance_id/service_bindings/:binding_id (`acceptsIncomplete` as for bind). */
  unbind(
    instanceId: string,
    bindingId: string,
    query: PlanQuery,
    acceptsIncomplete: boolean,
    options: CallOptions = {},
  ): Promise<OsbOutcome> {
    const incomplete = acceptsIncomplete && this.supports('asyncBindings') ? '&accepts_incomplete=true' : '';
    return this.call(
      'DELETE',
      `${bindingPath(instanceId, bindingId)}?${planQuery(query)}${incomplete}`,
      undefined,
      options,
    );
  }

  /** GET /v2/service_instances/:instance_id/service_bindings/:binding_id/last_operation (2.14). */
  bindingLastOperation(
    instanceId: string,
    bindingId: string,
    query: PollQuery,
    options: CallOptions = {},
  ): Promise<OsbOutcome> {
    if (!this.supports('asyncBindings'))
      return this.unsupported('the binding last_operation endpoint', 'asyncBindings');
    return this.call(
      'GET',
      `${bindingPath(instanceId, bindingId)}/last_operation?${pollQuery(query)}`,
      undefined,
      options,
    );
  }

  /** GET /v2/service_instances/:instance_id/service_bindings/:binding_id (2.14). */
  fetchBinding(instanceId: string, bindingId: string): Promise<OsbOutcome> {
    if (!this.supports('fetchBinding')) return this.unsupported('GET binding', 'fetchBinding');
    return this.call('GET', bindingPath(instanceId, bindingId));
  }

  close(): void {
    this.agent.destroy();
  }

  /**
   * An endpoint this version lacks is never sent: the answer is a transport failure naming the
   * endpoint and the version, without a request. Callers check supports() first, or, to poll an
   * asynchronous binding, use a client at 2.14 at least (see the binding reconciler).
   */
  private unsupported(what: string, feature: OsbFeature): Promise<OsbOutcome> {
    return Promise.resolve({
      kind: 'transport',
      message: `${what} is not in OSB API ${formatApiVersion(this.minor)} (${feature})`,
    });
  }

  private async call(method: string, path: string, body?: unknown, options: CallOptions = {}): Promise<OsbOutcome> {
    const url = new URL(path, this.base);
    const headers: Record<string, string | number> = {
      [API_VERSION_HEADER]: formatApiVersion(this.minor),
      accept: 'application/json',
    };
    if (this.options.authorization) headers.authorization = this.options.authorization;
    if (options.identity) headers[ORIGINATING_IDENTITY_HEADER] = formatOriginatingIdentity(options.identity);
    // spec.md, "Request Identity" (2.15): if the platform supports it, on every request.
    if (this.supports('requestIdentity')) headers[REQUEST_IDENTITY_HEADER] = randomUUID();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const outcome = await this.send({ ...urlToHttpOptions(url), method, headers, agent: this.agent }, payload);
    this.options.observe?.(method, outcomeLabel(outcome), `${url.pathname}${url.search}`);
    return outcome;
  }

  /** One request within the limits: the deadline is a timeout; a body past the cap, a response without one. */
  private async send(options: https.RequestOptions, payload: Buffer | undefined): Promise<OsbOutcome> {
    const limits: CallLimits = {
      timeoutMs: this.options.timeoutMs,
      maxResponseBytes: this.options.maxResponseBytes ?? DEFAULT_OSB_MAX_RESPONSE_BYTES,
      names: OSB_LIMIT_NAMES,
    };
    try {
      const res = await boundedRequest(options, payload, limits);
      const retryAfter = Number(res.headers['retry-after']);
      return {
        kind: 'response',
        status: res.status,
        body: parseJson(res.body),
        ...(Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterSeconds: retryAfter } : {}),
      };
    } catch (error) {
      if (error instanceof DeadlineExceededError) return { kind: 'timeout', message: error.message };
      if (error instanceof ResponseTooLargeError)
        return { kind: 'response', status: error.status, body: undefined, bodyError: error };
      return { kind: 'transport', message: (error as Error).message };
    }
  }
}

/** The `status` label of depot_controller_osb_requests_total. */
function outcomeLabel(outcome: OsbOutcome): string {
  if (outcome.kind !== 'response') return outcome.kind;
  return outcome.bodyError ? 'too_large' : String(outcome.status);
}

/** The body as JSON; undefined when empty or not JSON. */
function parseJson(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

export interface PlanQuery {
  service_id: string;
  plan_id: string;
}

export interface PollQuery {
  service_id?: string;
  plan_id?: string;
  operation?: string;
}

function enc(value: string): string {
  return encodeURIComponent(value);
}

function bindingPath(instanceId: string, bindingId: string): string {
  return `v2/service_instances/${enc(instanceId)}/service_bindings/${enc(bindingId)}`;
}

function planQuery(query: PlanQuery): string {
  return new URLSearchParams({ service_id: query.service_id, plan_id: query.plan_id }).toString();
}

function pollQuery(query: PollQuery): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value) params.set(key, value);
  return params.toString();
}

/** "Status: 500; ErrorMessage: …; Description: …", the wording users know from the original. */
export function describeOutcome(outcome: OsbOutcome): string {
  if (outcome.kind !== 'response') return outcome.message;
  const body = (outcome.body ?? {}) as { error?: unknown; description?: unknown };
  const parts = [`Status: ${outcome.status}`];
  if (typeof body.error === 'string') parts.push(`ErrorMessage: ${body.error}`);
  if (typeof body.description === 'string') parts.push(`Description: ${body.description}`);
  if (outcome.bodyError) parts.push(outcome.bodyError.message);
  return parts.join('; ');
}

/** A catalog fetch: the answer at the last version tried, and every version tried, in order. */
export interface CatalogFetch {
  outcome: OsbOutcome;
  minor: ApiMinor;
  tried: ApiMinor[];
}

/**
 * GET /v2/catalog at each of `minors` in turn (newest first) until the broker answers anything
 * but 412 Precondition Failed, its answer to a version it does not support (spec.md, "API
 * Version Header").
 */
export async function fetchCatalog(client: OsbClient, minors: readonly ApiMinor[]): Promise<CatalogFetch> {
  let last: CatalogFetch | undefined;
  for (const minor of minors) {
    const outcome = await client.atVersion(minor).catalog();
    last = { outcome, minor, tried: [...(last?.tried ?? []), minor] };
    if (!isVersionRefused(outcome)) break;
  }
  if (!last) throw new Error('fetchCatalog needs at least one version to offer');
  return last;
}

export function isVersionRefused(outcome: OsbOutcome): boolean {
  return outcome.kind === 'response' && outcome.status === 412;
}
