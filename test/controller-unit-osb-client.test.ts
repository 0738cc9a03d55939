/**
 * The controller's OSB client on its own against brokers on loopback that misbehave: every call
 * is bounded as a whole by OSB_REQUEST_TIMEOUT_MS (connecting, the headers and the whole body,
 * so a broker that trickles a byte a second is cut off like one that never answers) and its
 * body by OSB_MAX_RESPONSE_BYTES (read no further, connection closed). What is checked is the
 * outcome the reconcilers get and what the broker saw happen to its connection.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, describe, test } from 'node:test';
import { ResponseTooLargeError } from '../catalog-controller/call-limits.js';
import {
  DEFAULT_OSB_MAX_RESPONSE_BYTES,
  OsbClient,
  describeOutcome,
  type OsbClientOptions,
} from '../catalog-controller/osb-client/osb-client.js';
import {
  json,
  largeCatalog,
  smallCatalog,
  startFakeBroker,
  streamLargeBody,
  trickle,
  type FakeBroker,
  type Sent,
} from './misbehaving-broker.js';

const MiB = 1024 * 1024;
const brokers: FakeBroker[] = [];
const clients: OsbClient[] = [];

after(async () => {
  for (const client of clients) client.close();
  await Promise.all(brokers.map((b) => b.close()));
});

/** A broker answering every request with `handler`, and a client of it. */
async function brokerAndClient(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  options: Partial<OsbClientOptions> = {},
): Promise<{ broker: FakeBroker; client: OsbClient; observed: string[] }> {
  const broker = await startFakeBroker(handler);
  brokers.push(broker);
  const observed: string[] = [];
  const client = new OsbClient({
    url: broker.url,
    timeoutMs: 60_000,
    observe: (method, status) => observed.push(`${method} ${status}`),
    ...options,
  });
  clients.push(client);
  return { broker, client, observed };
}

describe('the deadline (OSB_REQUEST_TIMEOUT_MS) covers the whole call', () => {
  test('a catalog sent a byte a second is a timeout naming the limit, and the connection is closed', async () => {
    let sent: Promise<Sent> | undefined;
    const { client, observed } = await brokerAndClient(
      (_req, res) => {
        sent = trickle(res, JSON.stringify(smallCatalog('slow')), 200);
      },
      { timeoutMs: 1500 },
    );
    const outcome = await client.catalog();
    assert.equal(outcome.kind, 'timeout');
    assert.equal(describeOutcome(outcome), 'the broker did not answer in full within 1500 ms (OSB_REQUEST_TIMEOUT_MS)');
    const result = await sent!;
    assert.equal(result.complete, false, 'the broker was cut off before it had sent its whole catalog');
    assert.ok(result.bytes > 0, 'bytes did arrive: the deadline is not an idle timeout');
    assert.deepEqual(observed, ['GET timeout']);
  });

  test('headers that never come are a timeout too', async () => {
    const { client } = await brokerAndClient(() => {}, { timeoutMs: 1000 });
    const outcome = await client.provision('i-1', {
      service_id: 's',
      plan_id: 'p',
      organization_guid: 'o',
      space_guid: 's',
    });
    assert.equal(outcome.kind, 'timeout');
    assert.match(describeOutcome(outcome), /within 1 s \(OSB_REQUEST_TIMEOUT_MS\)$/);
  });
});

describe('the body cap (OSB_MAX_RESPONSE_BYTES)', () => {
  test('a streamed body past the cap: the status, no body, the limit named; the rest is not read', async () => {
    let sent: Promise<Sent> | undefined;
    const { client, observed } = await brokerAndClient(
      (_req, res) => {
        sent = streamLargeBody(res, 100 * MiB);
      },
      { maxResponseBytes: MiB },
    );
    const outcome = await client.catalog();
    assert.equal(outcome.kind, 'response');
    assert.equal(outcome.status, 200);
    assert.equal(outcome.body, undefined);
    assert.ok(outcome.bodyError instanceof ResponseTooLargeError);
    assert.equal(outcome.bodyError.limitBytes, MiB);
    assert.equal(outcome.bodyError.variable, 'OSB_MAX_RESPONSE_BYTES');
    assert.equal(
      describeOutcome(outcome),
      "Status: 200; the broker's response exceeded 1 MiB (OSB_MAX_RESPONSE_BYTES)",
    );
    const result = await sent!;
    assert.equal(result.complete, false, 'the connection was closed before the body was all sent');
    assert.ok(result.bytes < 100 * MiB, `sent ${result.bytes} bytes of 100 MiB`);
    assert.deepEqual(observed, ['GET too_large']);
  });

  test('a Content-Length past the cap is refused before the body is read', async () => {
    let sent: Promise<Sent> | undefined;
    const { client } = await brokerAndClient(
      (_req, res) => {
        sent = streamLargeBody(res, 100 * MiB, { contentLength: true });
      },
      { maxResponseBytes: MiB },
    );
    const outcome = await client.catalog();
    assert.equal(outcome.kind === 'response' && outcome.bodyError?.limitBytes, MiB);
    assert.equal((await sent!).complete, false);
  });

  test('a 4 MB catalog is read whole under the default cap (16 MiB)', async () => {
    assert.equal(DEFAULT_OSB_MAX_RESPONSE_BYTES, 16 * MiB);
    const catalog = largeCatalog(4 * 1000 * 1000, 20, 'big');
    const { client } = await brokerAndClient((_req, res) => json(res, 200, catalog));
    const outcome = await client.catalog();
    assert.equal(outcome.kind, 'response');
    assert.equal(outcome.bodyError, undefined);
    assert.deepEqual(outcome.body, catalog);
  });

  test('a body of exactly the cap is read; one byte more is not', async () => {
    const exact = JSON.stringify({ padding: 'z'.repeat(2048 - 14) });
    assert.equal(exact.length, 2048);
    let body = exact;
    const { client } = await brokerAndClient((_req, res) => json(res, 200, JSON.parse(body)), {
      maxResponseBytes: 2048,
    });
    const fits = await client.catalog();
    assert.equal(fits.kind === 'response' && fits.bodyError, undefined);
    assert.deepEqual(fits.kind === 'response' && fits.body, JSON.parse(exact));
    body = JSON.stringify({ padding: 'z'.repeat(2048 - 13) });
    const over = await client.catalog();
    assert.match(describeOutcome(over), /exceeded 2 KiB \(OSB_MAX_RESPONSE_BYTES\)$/);
  });

  test('after a cut-off response the next call gets a fresh connection and its answer', async () => {
    let calls = 0;
    const ports: number[] = [];
    const { client } = await brokerAndClient(
      (req, res) => {
        ports.push(req.socket.remotePort!);
        if (calls++ === 0) void streamLargeBody(res, 10 * MiB);
        else json(res, 200, smallCatalog('after'));
      },
      { maxResponseBytes: MiB },
    );
    const first = await client.catalog();
    assert.ok(first.kind === 'response' && first.bodyError);
    const second = await client.catalog();
    assert.deepEqual(second.kind === 'response' && second.body, smallCatalog('after'));
    assert.equal(ports.length, 2);
    assert.notEqual(ports[0], ports[1], 'the cut-off connection was not reused');
  });
});
