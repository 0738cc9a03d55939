import { PermanentOfferingError } from '../offering.js';

/** The management API could not be reached, or answered with a server error: worth a retry. */
export class ManagementApiError extends Error {
  override name = 'ManagementApiError';
}

/** The management API refused the request (a 4xx other than 404): retrying will not help. */
export class ManagementApiRefusal extends PermanentOfferingError {
  override name = 'ManagementApiRefusal';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** 4xx answers that may go away by themselves: a timeout, too many requests. */
const TRANSIENT_STATUSES = new Set([408, 425, 429]);

/** A path segment of the API (a vhost or user name), percent-encoded: a vhost may be called `/`. */
export const segment = (name: string): string => encodeURIComponent(name);

export interface ManagementApiOptions {
  /** RABBITMQ_SERVICE_URL: `http(s)://user:password@host:port[/prefix]`; the API is at `<prefix>/api/`. */
  serviceUrl: string;
  /** How long one request may take before it fails (and its job is retried). */
  timeoutMs?: number;
}

/**
 * RabbitMQ's management HTTP API as the admin of RABBITMQ_SERVICE_URL, over node's fetch. The
 * URL's credentials become a Basic Authorization header (fetch refuses URLs that carry them).
 * Errors name the method and path, never what was sent: a user's body holds its password hash.
 */
export class ManagementApi {
  /** `http(s)://host:port/<prefix>/api/`, without credentials. */
  readonly apiUrl: string;
  private readonly authorization: string;
  private readonly timeoutMs: number;

  constructor(options: ManagementApiOptions) {
    const url = new URL(options.serviceUrl);
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    url.username = '';
    url.password = '';
    url.search = '';
    url.hash = '';
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/api/`;
    this.apiUrl = url.toString();
    this.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** GET; undefined when the object does not exist (404). */
  async get<T>(path: string): Promise<T | undefined> {
    const answer = await this.request('GET', path);
    return answer.status === 404 ? undefined : (JSON.parse(answer.text) as T);
  }

  /** PUT: creates the object or sets it to `body` (the API's PUTs are idempotent). */
  async put(path: string, body: object): Promise<void> {
    const answer = await this.request('PUT', path, body);
    if (answer.status === 404) throw this.refusal('PUT', path, answer.status, answer.text, body);
  }

  /** DELETE; false when there was nothing to delete (404), so that a re-run job finds its work done. */
  async delete(path: string, timeoutMs?: number): Promise<boolean> {
    return (await this.request('DELETE', path, undefined, timeoutMs)).status !== 404;
  }

  private async request(
    method: string,
    path: string,
    body?: object,
    timeoutMs = this.timeoutMs,
  ): Promise<{ status: number; text: string }> {
    const where = `${method} ${new URL(path, this.apiUrl).pathname}`;
    let response: Response;
    let text: string;
    try {
      response = await fetch(new URL(path, this.apiUrl), {
        method,
        headers: {
          authorization: this.authorization,
          accept: 'application/json',
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
      throw new ManagementApiError(`RabbitMQ management API: ${where}: ${cause}`, { cause: error });
    }
    if (response.ok || response.status === 404) return { status: response.status, text };
    if (response.status >= 500 || TRANSIENT_STATUSES.has(response.status)) {
      throw new ManagementApiError(
        `RabbitMQ management API: ${where} answered ${response.status}${reasonOf(text, body)}`,
      );
    }
    throw this.refusal(method, path, response.status, text, body);
  }

  private refusal(method: string, path: string, status: number, text: string, body?: object): ManagementApiRefusal {
    const where = `${method} ${new URL(path, this.apiUrl).pathname}`;
    return new ManagementApiRefusal(
      `RabbitMQ management API: ${where} answered ${status}${reasonOf(text, body)}`,
      status,
    );
  }
}

/**
 * `: <reason>` from an error body (`{"error": …, "reason": …}`), at most 200 characters, with
 * any value that was sent (a password hash) blanked out.
 */
function reasonOf(text: string, sent?: object): string {
  let reason: string;
  try {
    const parsed = JSON.parse(text) as { reason?: unknown; error?: unknown };
    reason = String(parsed.reason ?? parsed.error ?? '');
  } catch {
    reason = text;
  }
  for (const value of Object.values(sent ?? {})) {
    if (typeof value === 'string' && value.length >= 8) reason = reason.split(value).join('…');
  }
  reason = reason.replace(/\s+/g, ' ').trim().slice(0, 200);
  return reason ? `: ${reason}` : '';
}
