import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { loadCatalogFile } from '../catalog/catalog-file.js';
import { serverAddress, type BrokerConfig } from '../config.js';
import type { StateCipher } from '../crypto/state-cipher.js';
import { getBinding } from '../db/bindings.js';
import { getInstance } from '../db/instances.js';
import { DepotBroker } from '../depot-broker.js';
import { testExtension } from '../depot.js';
import { BrokerError } from '../errors.js';
import { OperationQueue } from '../jobs/operation-queue.js';
import { BrokerMetrics } from '../metrics.js';
import type { Offering } from '../offerings/offering.js';
import { createOfferings } from '../offerings/registry.js';
import { redisOptions } from '../redis.js';
import type { RequestOptions } from '../service-broker.js';
import { createLogger } from '../../runtime/logger.js';
import { withTimeout } from '../../runtime/timeout.js';
import type { Command } from './command.js';
import { AdminError } from './errors.js';
import { json } from './output.js';
import { latestOperationId, operationDetails, type OperationDetails } from './queries.js';

/**
 * Why an operation cannot be started again as it is, or undefined when it can. The spec lets a
 * platform send a DELETE again after a failed deprovision or unbind, and a PATCH again after a
 * failed update that says `update_repeatable: true`.
 */
function refusal(op: OperationDetails): string | undefined {
  if (op.state !== 'failed') return `operation ${op.id} is ${op.state}; only a failed operation can be retried`;
  switch (op.type) {
    case 'deprovision':
    case 'unbind':
      return undefined;
    case 'update':
      return op.update_repeatable === true
        ? undefined
        : `update ${op.id} failed without update_repeatable: the platform must not repeat it as it is`;
    case 'provision':
      return (
        `a failed provision is not repeated as it is: the platform deprovisions the instance ` +
        `(DELETE, orphan mitigation) or provisions it again with a new PUT`
      );
    case 'bind':
      return (
        `a failed bind is not repeated by depot: its credentials go to the platform, which unbinds ` +
        `(orphan mitigation) or binds again with a new PUT`
      );
  }
}

/** The broker's own endpoints, on the state, the catalog and the queue the broker uses (no HTTP, no worker). */
interface BrokerHandle {
  broker: DepotBroker;
  queue: OperationQueue;
  close(): Promise<void>;
}

async function openBroker(config: BrokerConfig, pool: pg.Pool, cipher: StateCipher): Promise<BrokerHandle> {
  const logger = createLogger('silent', 'depot-admin');
  const queue = new OperationQueue({ connection: redisOptions(config.redisUrl), prefix: config.queuePrefix });
  let offerings: Offering[] = [];
  const close = async () => {
    await queue.close().catch(() => undefined);
    await Promise.all(offerings.map((o) => o.close().catch(() => undefined)));
  };
  try {
    // Before anything changes: the job of the new operation must reach the queue.
    await withTimeout(queue.waitUntilReady(), 5000, 'no answer within 5 seconds').catch((error: unknown) => {
      const address = serverAddress(config.redisUrl, 6379);
      throw new AdminError(`cannot reach Redis at ${address} (REDIS_URL): ${(error as Error).message}`);
    });
    // The catalog as the broker loads it (the offerings are built, never called: the broker only
    // looks plans up; the workers carry the operation out).
    const testing = await testExtension(config);
    offerings = [...createOfferings(config, logger), ...(testing ? [testing.offering] : [])];
    const catalog = await loadCatalogFile(config.catalogFile, offerings, testing ? [testing.catalogFile] : []);
    const broker = new DepotBroker({
      pool,
      cipher,
      catalog,
      queue,
      logger,
      metrics: new BrokerMetrics(),
      retryAfterSeconds: config.retryAfterSeconds,
      syncOperationTimeoutMs: config.syncOperationTimeoutMs,
    });
    return { broker, queue, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The request the platform would send again, through the broker's code path; the new operation's id. */
async function repeat(
  broker: DepotBroker,
  op: OperationDetails,
  pool: pg.Pool,
  cipher: StateCipher,
  options: RequestOptions,
): Promise<string | undefined> {
  const instance = await getInstance(pool, cipher, op.instance_id);
  if (!instance || instance.state === 'deleted') throw new AdminError(`service instance ${op.instance_id} is gone`);
  const ids = { service_id: instance.service_id, plan_id: instance.plan_id };
  switch (op.type) {
    case 'deprovision':
      return (await broker.deprovision(op.instance_id, ids, options)).body.operation;
    case 'unbind': {
      const binding = await getBinding(pool, cipher, op.binding_id!);
      if (!binding || binding.state === 'deleted') throw new AdminError(`service binding ${op.binding_id} is gone`);
      const reply = await broker.unbind(op.instance_id, binding.id, ids, options);
      return 'operation' in reply.body ? (reply.body.operation as string) : undefined;
    }
    case 'update': {
      const { request } = op;
      const reply = await broker.update(
        op.instance_id,
        {
          service_id: instance.service_id,
          ...(request.plan_id ? { plan_id: request.plan_id } : {}),
          ...(request.parameters ? { parameters: request.parameters } : {}),
          ...(request.context ? { context: request.context } : {}),
          ...(request.maintenance_info ? { maintenance_info: request.maintenance_info } : {}),
        },
        options,
      );
      return 'operation' in reply.body ? (reply.body.operation as string) : undefined;
    }
    default:
      throw new AdminError(refusal(op) ?? `${op.type} cannot be retried`);
  }
}

export const retryCommand: Command = {
  name: 'retry',
  synopsis: 'OPERATION',
  summary: 'Start a failed deprovision, unbind or repeatable update again, as a re-sent request would.',
  flags: {},
  arguments: ['OPERATION'],
  async run(context, args) {
    const operationId = args.positionals[0]!;
    const { config, pool, cipher } = await context.state();
    const op = await operationDetails(pool, cipher, operationId);
    if (!op) throw new AdminError(`operation ${operationId} does not exist`);
    const refused = refusal(op);
    if (refused) throw new AdminError(refused);
    const latest = await latestOperationId(pool, op.instance_id, op.binding_id);
    if (latest !== op.id) {
      const of = op.binding_id ? `binding ${op.binding_id}` : `instance ${op.instance_id}`;
      throw new AdminError(`operation ${op.id} is not the latest of ${of}: ${latest} came after it`);
    }

    const handle = await openBroker(config, pool, cipher);
    let started: string | undefined;
    try {
      const options = { acceptsIncomplete: true, originatingIdentity: null, requestIdentity: randomUUID() };
      started = await repeat(handle.broker, op, pool, cipher, options);
      if (started && !(await handle.queue.jobState(started))) {
        context.note(`The job of operation ${started} could not be added now; the sweeper adds it.\n`);
      }
    } catch (error) {
      // The broker's answer to the platform's request, 4xx or 5xx: nothing was started.
      if (error instanceof BrokerError) throw new AdminError(`the broker refused the ${op.type}: ${error.description}`);
      throw error;
    } finally {
      await handle.close();
    }
    if (!started) throw new AdminError(`the ${op.type} had nothing left to do: the instance is as it asked`);
    const result = {
      operation: started,
      type: op.type,
      instance_id: op.instance_id,
      binding_id: op.binding_id,
      retries: op.id,
    };
    if (context.json) return context.write(json(result));
    context.write(
      `Started ${op.type} operation ${started} (retrying ${op.id}).\nFollow it with: depot operation ${started}\n`,
    );
  },
};
