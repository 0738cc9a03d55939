/**
 * Helpers for the tests of the `rabbitmq` offering: its catalog ids, the server's management API
 * as its admin (independent of the offering's own client), and AMQP connections as applications
 * open them from a binding's `uri`.
 */
import amqp, { type ChannelModel } from 'amqplib';

export const RABBITMQ_SERVICE_ID = 'b88b021c-352a-4280-a77c-bfb4ac3daee3';
export const RABBITMQ_PLAN_ID = '013e6431-c905-4251-9576-db227e735cbd';

/** RABBITMQ_SERVICE_URL for the tests: TEST_RABBITMQ_SERVICE_URL, or the machine's RabbitMQ as guest. */
export const RABBITMQ_URL = process.env.TEST_RABBITMQ_SERVICE_URL ?? 'http://guest:guest@127.0.0.1:15672';

export interface ApiAnswer {
  status: number;
  body: unknown;
}

/**
 * One request to a management API given as a URL with credentials (the admin's RABBITMQ_URL,
 * or a binding's `http_api_uri`); `path` is relative to its `/api/`.
 */
export async function managementRequest(url: string, method: string, path: string, body?: object): Promise<ApiAnswer> {
  const parsed = new URL(url);
  const auth = Buffer.from(`${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`);
  parsed.username = '';
  parsed.password = '';
  const base = parsed.pathname.endsWith('/api/')
    ? parsed
    : new URL(`${parsed.pathname.replace(/\/$/, '')}/api/`, parsed);
  const res = await fetch(new URL(path, base), {
    method,
    headers: { authorization: `Basic ${auth.toString('base64')}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsedBody: unknown = text;
  try {
    parsedBody = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsedBody };
}

/** A GET as the server's admin; `undefined` when the object does not exist. */
export async function adminGet<T>(path: string): Promise<T | undefined> {
  const answer = await managementRequest(RABBITMQ_URL, 'GET', path);
  if (answer.status === 404) return undefined;
  if (answer.status !== 200) throw new Error(`GET ${path} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return answer.body as T;
}

/** The names of the server's users. */
export async function userNames(): Promise<string[]> {
  return ((await adminGet<Array<{ name: string }>>('users?columns=name')) ?? []).map((u) => u.name);
}

/** AMQP connections a test opened, closed at the end of the file. */
export class AmqpConnections {
  private readonly open: ChannelModel[] = [];

  /** Connects as an application would with a binding's `uri`; errors show up on the calls. */
  async connect(uri: string): Promise<ChannelModel> {
    const connection = await amqp.connect(uri);
    connection.on('error', () => undefined);
    this.open.push(connection);
    return connection;
  }

  async closeAll(): Promise<void> {
    for (const connection of this.open) await connection.close().catch(() => undefined);
  }
}

/** The message of the error `attempt` rejects with, or undefined when it succeeds. */
export async function refusal(attempt: Promise<unknown>): Promise<string | undefined> {
  try {
    await attempt;
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Publishes `text` to `queue` (declared first) and consumes it back on another channel. */
export async function roundTrip(publisher: ChannelModel, consumer: ChannelModel, queue: string, text: string) {
  const out = await publisher.createConfirmChannel();
  await out.assertQueue(queue, { durable: true });
  out.sendToQueue(queue, Buffer.from(text), { persistent: true });
  await out.waitForConfirms();
  const inbound = await consumer.createChannel();
  const received = new Promise<string>((resolve) => {
    void inbound.consume(queue, (message) => {
      if (!message) return;
      inbound.ack(message);
      resolve(message.content.toString());
    });
  });
  const text_ = await received;
  await out.close();
  await inbound.close();
  return text_;
}
