/**
 * HTTP servers on loopback that stand for other people's brokers: they answer what the test
 * says, and can answer badly (a body a byte a second, a body of any size) while recording what
 * the client did to the connection (how much was sent before it was closed).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CatalogResponse } from '../osb/index.js';

export interface FakeBroker {
  url: string;
  /** Every request, as "METHOD /path?query". */
  requests: string[];
  close(): Promise<void>;
}

export type BrokerHandler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

/** A server calling `handler` with each request's whole body. */
export async function startFakeBroker(handler: BrokerHandler): Promise<FakeBroker> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push(`${req.method} ${req.url}`);
      handler(req, res, Buffer.concat(chunks).toString('utf8'));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** What a stream of a response body came to when it ended. */
export interface Sent {
  /** Bytes handed to the socket. */
  bytes: number;
  /** Whether the whole body was sent (false: the client closed the connection first). */
  complete: boolean;
}

/** Sends `text` a byte every `intervalMs`; resolves once it is all sent or the connection closed. */
export function trickle(res: http.ServerResponse, text: string, intervalMs = 1000): Promise<Sent> {
  res.writeHead(200, { 'content-type': 'application/json' });
  return new Promise<Sent>((resolve) => {
    let sent = 0;
    const timer = setInterval(() => {
      if (sent >= text.length) {
        clearInterval(timer);
        res.end(() => resolve({ bytes: sent, complete: true }));
        return;
      }
      res.write(text[sent]);
      sent++;
    }, intervalMs);
    res.on('close', () => {
      clearInterval(timer);
      resolve({ bytes: sent, complete: res.writableFinished });
    });
  });
}

/**
 * Streams a JSON body of `totalBytes` (a catalog whose one service has a description that long),
 * in chunks, as fast as the client reads it; `contentLength` also declares its size up front.
 */
export function streamLargeBody(
  res: http.ServerResponse,
  totalBytes: number,
  options: { contentLength?: boolean; chunkBytes?: number } = {},
): Promise<Sent> {
  const head = '{"services":[{"id":"big","name":"big","description":"';
  const tail = '","bindable":false,"plans":[{"id":"p","name":"p","description":"p"}]}]}';
  const chunk = Buffer.alloc(options.chunkBytes ?? 64 * 1024, 'x');
  const fill = totalBytes - head.length - tail.length;
  res.writeHead(200, {
    'content-type': 'application/json',
    ...(options.contentLength ? { 'content-length': totalBytes } : {}),
  });
  return new Promise<Sent>((resolve) => {
    let bytes = 0;
    let left = fill;
    let closed = false;
    res.on('close', () => {
      closed = true;
      resolve({ bytes, complete: res.writableFinished });
    });
    res.on('error', () => {});
    const pump = (): void => {
      if (closed) return;
      if (bytes === 0) {
        res.write(head);
        bytes += head.length;
      }
      while (left > 0 && !closed) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        bytes += piece.length;
        if (!res.write(piece)) {
          res.once('drain', pump);
          return;
        }
      }
      if (!closed && left <= 0) {
        bytes += tail.length;
        res.end(tail);
      }
    };
    pump();
  });
}

/** A valid catalog of about `totalBytes`: `services` offerings, each padded with metadata to its share. */
export function largeCatalog(totalBytes: number, services: number, prefix: string): CatalogResponse {
  const padding = 'y'.repeat(Math.floor(totalBytes / services));
  return {
    services: Array.from({ length: services }, (_, i) => ({
      id: `${prefix}-service-${i}`,
      name: `${prefix}-service-${i}`,
      description: `service ${i}`,
      bindable: true,
      metadata: { padding },
      plans: [{ id: `${prefix}-plan-${i}`, name: `plan-${i}`, description: `plan ${i}` }],
    })),
  };
}

/** A one-service catalog (ids and names prefixed) with one plan. */
export function smallCatalog(prefix: string): CatalogResponse {
  return {
    services: [
      {
        id: `${prefix}-service`,
        name: `${prefix}-service`,
        description: `${prefix} service`,
        bindable: true,
        plans: [{ id: `${prefix}-plan`, name: `${prefix}-plan`, description: `${prefix} plan` }],
      },
    ],
  };
}
