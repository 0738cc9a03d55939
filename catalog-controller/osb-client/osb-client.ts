import http from 'node:http';
import https from 'node:https';
import {
  API_VERSION_HEADER,
  LATEST_API_VERSION,
  ORIGINATING_IDENTITY_HEADER,
  formatOriginatingIdentity,
  type BindRequest,
  type OriginatingIdentity,
  type ProvisionRequest,
  type UpdateRequest,
} from '../../osb/index.js';

/** What came back from a broker call (reference §2.8): a response, or no response at all. */
export type OsbOutcome =
  | { kind: 'response'; status: number; body: unknown; retryAfterSeconds?: number }
  | { kind: 'timeout'; message: string }
  | { kind: 'transport'; message: string };

export interface OsbClientOptions {
  url: string;
  /** `Basic …` or `Bearer …`. */
  authorization?: string;
  caBundle?: string;
  insecureSkipTLSVerify?: boolean;
  timeoutMs: number;
  /** Called once per request, for metrics. */
  observe?: (method: string, status: string) => void;
}

export interface CallOptions {
  identity?: OriginatingIdentity;
}

/** An OSB v2.17 client: one method per endpoint the platform side calls. */
export class OsbClient {
  private readonly base: URL;
  private readonly agent: http.Agent;

  constructor(private readonly options: OsbClientOptions) {
    this.base = new URL(options.url.endsWith('/') ? options.url : `${options.url}/`);
    this.agent =
      this.base.protocol === 'https:'
        ? new https.Agent({
            keepAlive: true,
            maxSockets: 32,
            ...(options.caBundle ? { ca: Buffer.from(options.caBundle, 'base64').toString('utf8') } : {}),
            rejectUnauthorized: !options.insecureSkipTLSVerify,
          })
        : new http.Agent({ keepAlive: true, maxSockets: 32 });
  }

  /** GET /v2/catalog */
  catalog(): Promise<OsbOutcome> {
    return this.call('GET', 'v2/catalog');
  }

  /** PUT /v2/service_instances/:instance_id?accepts_incomplete=true */
  provision(instanceId: string, body: ProvisionRequest, options: CallOptions = {}): Promise<OsbOutcome> {
    return this.call('PUT', `v2/service_instances/${enc(instanceId)}?accepts_incomplete=true`, body, options);
  }

  /** PATCH /v2/service_instances/:instance_id?accepts_incomplete=true */
  update(instanceId: string, body: UpdateRequest, options: CallOptions = {}): Promise<OsbOutcome> {
    return this.call('PATCH', `v2/service_instances/${enc(instanceId)}?accepts_incomplete=true`, body, options);
  }

  /** DELETE /v2/service_instances/:instance_id?service_id&plan_id&accepts_incomplete=true */
  deprovision(instanceId: string, query: PlanQuery, options: CallOptions = {}): Promise<OsbOutcome> {
    return this.call('DELETE', `v2/service_instances/${enc(instanceId)}?${planQuery(query)}&accepts_incomplete=true`, undefined, options);
  }

  /** GET /v2/service_instances/:instance_id/last_operation */
  instanceLastOperation(instanceId: string, query: PollQuery, options: CallOptions = {}): Promise<OsbOutcome> {
    return this.call('GET', `v2/service_instances/${enc(instanceId)}/last_operation?${pollQuery(query)}`, undefined, options);
  }

  /** PUT /v2/service_instances/:instance_id/service_bindings/:binding_id */
  bind(instanceId: string, bindingId: string, body: BindRequest, acceptsIncomplete: boolean, options: CallOptions = {}): Promise<OsbOutcome> {
    const query = acceptsIncomplete ? '?accepts_incomplete=true' : '';
    return this.call('PUT', `${bindingPath(instanceId, bindingId)}${query}`, body, options);
  }

  /** DELETE /v2/service_instances/:instance_id/service_bindings/:binding_id */
  unbind(instanceId: string, bindingId: string, query: PlanQuery, acceptsIncomplete: boolean, options: CallOptions = {}): Promise<OsbOutcome> {
    const incomplete = acceptsIncomplete ? '&accepts_incomplete=true' : '';
    return this.call('DELETE', `${bindingPath(instanceId, bindingId)}?${planQuery(query)}${incomplete}`, undefined, options);
  }

  /** GET /v2/service_instances/:instance_id/service_bindings/:binding_id/last_operation */
  bindingLastOperation(instanceId: string, bindingId: string, query: PollQuery, options: CallOptions = {}): Promise<OsbOutcome> {
    return this.call('GET', `${bindingPath(instanceId, bindingId)}/last_operation?${pollQuery(query)}`, undefined, options);
  }

  /** GET /v2/service_instances/:instance_id/service_bindings/:binding_id */
  fetchBinding(instanceId: string, bindingId: string): Promise<OsbOutcome> {
    return this.call('GET', bindingPath(instanceId, bindingId));
  }

  close(): void {
    this.agent.destroy();
  }

  private call(method: string, path: string, body?: unknown, options: CallOptions = {}): Promise<OsbOutcome> {
    const url = new URL(path, this.base);
    const headers: Record<string, string | number> = { [API_VERSION_HEADER]: LATEST_API_VERSION, accept: 'application/json' };
    if (this.options.authorization) headers.authorization = this.options.authorization;
    if (options.identity) headers[ORIGINATING_IDENTITY_HEADER] = formatOriginatingIdentity(options.identity);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const transport = url.protocol === 'https:' ? https : http;
    return new Promise<OsbOutcome>((resolve) => {
      let settled = false;
      const settle = (outcome: OsbOutcome): void => {
        if (settled) return;
        settled = true;
        this.options.observe?.(method, outcome.kind === 'response' ? String(outcome.status) : outcome.kind);
        resolve(outcome);
      };
      const req = transport.request(url, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (error) => settle({ kind: 'transport', message: error.message }));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = undefined;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          const retryAfter = Number(res.headers['retry-after']);
          settle({
            kind: 'response',
            status: res.statusCode ?? 0,
            body: parsed,
            ...(Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterSeconds: retryAfter } : {}),
          });
        });
      });
      req.setTimeout(this.options.timeoutMs, () => {
        settle({ kind: 'timeout', message: `no answer from ${url.origin} within ${this.options.timeoutMs} ms` });
        req.destroy();
      });
      req.on('error', (error) => settle({ kind: 'transport', message: error.message }));
      req.end(payload);
    });
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
  return parts.join('; ');
}
