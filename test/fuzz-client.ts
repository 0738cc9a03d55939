/**
 * The fuzzers' HTTP side: raw node:http over a keep-alive agent (thousands of requests a run,
 * several in flight), and the properties every answer of Depot's must have.
 */
import http from 'node:http';
import fc from 'fast-check';
import { describeRequest, type FuzzRequest } from './osb-fuzz-requests.js';

/** FUZZ_TRACE=1: every request and the start of its answer on stderr (to follow a replay). */
const TRACE = process.env.FUZZ_TRACE === '1';

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Sends requests over at most `sockets` kept-alive connections; counts what it sent. */
export class FuzzClient {
  private readonly agent: http.Agent;
  private readonly url: URL;
  sent = 0;
  /** How many answers of each status (for the run's diagnostics). */
  readonly statuses = new Map<string, number>();

  constructor(baseUrl: string, sockets: number) {
    this.url = new URL(baseUrl);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
  }

  /**
   * One request; resolves with the complete answer, rejects if the connection is dropped or no
   * complete answer comes within `timeoutMs` ("never a dropped connection").
   */
  send(request: FuzzRequest, timeoutMs = 30_000): Promise<Answer> {
    this.sent++;
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { ...request.headers };
      if (request.body && !request.chunked) headers['Content-Length'] = String(request.body.length);
      // Node frames a GET or DELETE body only if told to.
      if (request.body && request.chunked) headers['Transfer-Encoding'] = 'chunked';
      const req = http.request({
        agent: this.agent,
        hostname: this.url.hostname,
        port: this.url.port,
        method: request.method,
        path: request.path,
        headers,
      });
      let done = false;
      const fail = (error: Error) => {
        if (done) return;
        done = true;
        reject(new Error(`no complete answer: ${error.message}`, { cause: error }));
      };
      req.setTimeout(timeoutMs, () => {
        fail(new Error(`timed out after ${timeoutMs} ms`));
        req.destroy();
      });
      req.on('error', fail);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', fail);
        res.on('aborted', () => fail(new Error('the answer was cut off')));
        res.on('end', () => {
          if (done) return;
          if (!res.complete) return fail(new Error('the answer was cut off'));
          done = true;
          const key = String(res.statusCode);
          if (TRACE)
            process.stderr.write(
              `${describeRequest(request)}\n  -> ${key} ${Buffer.concat(chunks).toString().slice(0, 200)}\n`,
            );
          this.statuses.set(key, (this.statuses.get(key) ?? 0) + 1);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        });
      });
      if (request.body && request.chunked) {
        // Transfer-Encoding: chunked, in three pieces.
        const third = Math.ceil(request.body.length / 3);
        for (let at = 0; at < request.body.length; at += third) req.write(request.body.subarray(at, at + third));
        req.end();
      } else {
        req.end(request.body);
      }
    });
  }

  /** The status counts as "status×count, …", and starts counting again. */
  takeStatuses(): string {
    const text = [...this.statuses]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, count]) => `${key}×${count}`)
      .join(', ');
    this.statuses.clear();
    return text;
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Runs `task` over `items` with at most `limit` at a time, in order of the items. */
export async function inParallel<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * What is wrong with an answer, if anything: a 5xx; a 2xx or 3xx to a request that must be
 * refused; a body that is not JSON; an error that is not a JSON object with a string
 * `description`.
 */
export function answerProblem(request: FuzzRequest, answer: Answer): string | undefined {
  const text = answer.body.toString('utf8');
  const line = `${request.method} ${request.path.slice(0, 160)} (${request.label})`;
  const shown = `${line} answered ${answer.status}: ${text.slice(0, 300)}`;
  if (answer.status >= 500) return `a 5xx: ${shown}`;
  if (request.mustReject && (answer.status < 400 || answer.status >= 500)) return `not refused with a 4xx: ${shown}`;
  if (answer.status === 304) return undefined; // If-None-Match of the catalog: no body
  if (!/^application\/json/.test(answer.headers['content-type'] ?? ''))
    return `not JSON (${answer.headers['content-type']}): ${shown}`;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `a body that does not parse as JSON: ${shown}`;
  }
  if (answer.status >= 400) {
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      return `an error that is not an object: ${shown}`;
    const { description } = body as { description?: unknown };
    if (typeof description !== 'string' || description === '') return `an error without a description: ${shown}`;
  }
  return undefined;
}

/**
 * Arrays of exactly `length` items that shrink like arrays of 1 to `length` items: every run
 * sends a full batch, and a failure shrinks to the fewest requests that still fail.
 */
export function batchOf<T>(item: fc.Arbitrary<T>, length: number): fc.Arbitrary<T[]> {
  return new Batch(item, length);
}

class Batch<T> extends fc.Arbitrary<T[]> {
  private readonly full: fc.Arbitrary<T[]>;
  private readonly shorter: fc.Arbitrary<T[]>;

  constructor(item: fc.Arbitrary<T>, length: number) {
    super();
    this.full = fc.array(item, { minLength: length, maxLength: length });
    this.shorter = fc.array(item, { minLength: 1, maxLength: length });
  }

  generate(random: fc.Random, biasFactor: number | undefined): fc.Value<T[]> {
    return this.full.generate(random, biasFactor);
  }

  canShrinkWithoutContext(value: unknown): value is T[] {
    return this.shorter.canShrinkWithoutContext(value);
  }

  shrink(value: T[], context: unknown): fc.Stream<fc.Value<T[]>> {
    // Both are array arbitraries of the same items: the full one's context serves the shorter one.
    return this.shorter.shrink(value, context);
  }
}
