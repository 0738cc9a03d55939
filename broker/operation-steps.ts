import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { LastOperationResponse } from '../osb/index.js';
import type { Catalog, CatalogPlan } from './catalog/catalog.js';
import {
  activeOperations,
  getOperation,
  type LastOperation,
  type NewOperation,
  type OperationRow,
} from './db/operations.js';
import { BadRequestError, BrokerError, ConcurrencyError, ConflictError } from './errors.js';
import type { OperationQueue } from './jobs/operation-queue.js';
import { withTimeout } from '../runtime/timeout.js';
import type { StateCipher } from './crypto/state-cipher.js';
import type { Logger } from '../runtime/logger.js';
import type { BrokerMetrics } from './metrics.js';
import type { LastOperationReply, RequestOptions } from './service-broker.js';

/** What the broker's endpoints work with: the state, the catalog, the queue, and its settings. */
export interface BrokerParts {
  pool: pg.Pool;
  /** Seals and opens the stored parameters, contexts, requests and bind responses. */
  cipher: StateCipher;
  catalog: Catalog;
  queue: OperationQueue;
  logger: Logger;
  metrics: BrokerMetrics;
  retryAfterSeconds: number;
  syncOperationTimeoutMs: number;
}

/** What a mutation decided inside its transaction; the job is added after the commit. */
export type Accepted = { started: OperationRow } | { running: OperationRow };
export type Decision<Done> = Accepted | { done: Done };

/** The steps every endpoint shares: catalog lookups, operation rows, jobs, and their outcome. */
export class OperationSteps {
  constructor(private readonly options: BrokerParts) {}

  requirePlan(serviceId: string, planId: string): CatalogPlan {
    if (!this.options.catalog.service(serviceId)) {
      throw new BadRequestError(`service_id ${JSON.stringify(serviceId)} is not in the catalog.`);
    }
    const plan = this.options.catalog.plan(serviceId, planId);
    if (!plan) throw new BadRequestError(`plan_id ${JSON.stringify(planId)} is not a plan of service ${serviceId}.`);
    return plan;
  }

  newOperation(
    instanceId: string,
    bindingId: string | null,
    type: NewOperation['type'],
    request: NewOperation['request'],
    options: RequestOptions,
  ): NewOperation {
    return {
      id: randomUUID(),
      instance_id: instanceId,
      binding_id: bindingId,
      type,
      request,
      originating_identity: options.originatingIdentity,
      request_identity: options.requestIdentity,
    };
  }

  async runningOperation(client: pg.PoolClient, instanceId: string, bindingId: string | null): Promise<OperationRow> {
    const op = (await activeOperations(client, this.options.cipher, instanceId)).find(
      (o) => o.binding_id === bindingId,
    );
    if (!op) throw new ConcurrencyError('The operation in progress just ended; try again.');
    return op;
  }

  /** After the commit: adds the job of a started operation (a running one has its job already). */
  async accepted(decision: Accepted): Promise<OperationRow> {
    if ('running' in decision) return decision.running;
    const op = decision.started;
    this.options.metrics.operationsStarted.inc({ type: op.type });
    try {
      await withTimeout(this.options.queue.enqueue(op.id, op.type), 2000, 'Redis did not answer within 2 seconds');
    } catch (error) {
      // The operation is recorded; the sweeper adds its job once Redis answers again.
      this.options.logger.warn({ err: error, operationId: op.id }, 'could not add the job now; the sweeper will');
    }
    return op;
  }

  /**
   * Waits until a bind or unbind has ended, however far the replica that started it has got;
   * 500 with its description if it failed, 504 if it is still running at the timeout.
   */
  async completeSynchronously(op: OperationRow): Promise<void> {
    let finished: OperationRow | undefined;
    const ended = await this.options.queue.waitUntilEnded(op.id, this.options.syncOperationTimeoutMs, async () => {
      finished = await getOperation(this.options.pool, this.options.cipher, op.id);
      return finished === undefined || finished.state !== 'in progress';
    });
    if (!ended || !finished) {
      throw new BrokerError(
        504,
        `The ${op.type} did not finish within ${this.options.syncOperationTimeoutMs / 1000} seconds; it goes on. ` +
          'Send the request again to get its result, or use accepts_incomplete=true.',
      );
    }
    if (finished.state === 'failed') throw new BrokerError(500, finished.description ?? `The ${op.type} failed.`);
  }

  lastOperationReply(op: LastOperation): LastOperationReply {
    const body: LastOperationResponse = { state: op.state };
    if (op.description) body.description = op.description;
    if (op.instance_usable !== null) body.instance_usable = op.instance_usable;
    if (op.update_repeatable !== null) body.update_repeatable = op.update_repeatable;
    return op.state === 'in progress' ? { body, retryAfterSeconds: this.options.retryAfterSeconds } : { body };
  }

  /**
   * spec: 409 Conflict when the resource exists with different attributes, "whatever else is
   * wrong" with the request. Checks that need no lookup run first (the common case costs no
   * round trip); when one of them fails, the existing resource is looked up, and a difference
   * is answered with 409 instead of the check's own 4xx.
   */
  async conflictsFirst<T>(checks: () => T | Promise<T>, differs: () => Promise<boolean>, conflict: string): Promise<T> {
    try {
      return await checks();
    } catch (error) {
      if (error instanceof BrokerError && error.status < 500 && (await differs())) throw new ConflictError(conflict);
      throw error;
    }
  }
}
