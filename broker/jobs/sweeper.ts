import type pg from 'pg';
import { purgeDeletedBindings } from '../db/bindings.js';
import { purgeDeletedInstances } from '../db/instances.js';
import { idleOperations, overdueOperations } from '../db/operations.js';
import type { Logger } from '../../runtime/logger.js';
import type { BrokerMetrics } from '../metrics.js';
import type { OperationQueue } from './operation-queue.js';
import type { StateCipher } from '../crypto/state-cipher.js';
import { recordOutcome } from './outcome.js';

export interface SweeperOptions {
  pool: pg.Pool;
  cipher: StateCipher;
  queue: OperationQueue;
  logger: Logger;
  metrics: BrokerMetrics;
  /** An operation in progress for longer than this fails. */
  operationTimeoutSeconds: number;
  /** Deleted instances and bindings are forgotten after this long. */
  deletedRetentionHours: number;
  /** An operation untouched for this long gets its job added again (a lost job, a flushed Redis). */
  idleSeconds?: number;
  intervalMs?: number;
}

/**
 * Makes sure nothing stays "in progress" forever, whatever happened to Redis or a worker:
 * re-adds the job of every idle operation whose job is lost or already finished in Redis (a
 * job still waiting or running is left alone), fails operations past their deadline, and forgets deleted resources
 * after the retention window. Safe to run in every worker at once.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly options: Required<SweeperOptions>;

  constructor(options: SweeperOptions) {
    this.options = { idleSeconds: 60, intervalMs: 30_000, ...options };
  }

  start(): void {
    const tick = () => {
      if (this.running) return; // a sweep still going: skip this tick
      this.running = this.sweep()
        .catch((error: unknown) => this.options.logger.warn({ err: error }, 'sweep failed'))
        .finally(() => {
          this.running = undefined;
        });
    };
    this.timer = setInterval(tick, this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  async sweep(): Promise<void> {
    const { pool, queue, logger, metrics } = this.options;
    for (const op of await overdueOperations(pool, this.options.cipher, this.options.operationTimeoutSeconds)) {
      const description = `${op.type} did not finish within ${this.options.operationTimeoutSeconds} seconds.`;
      if (await recordOutcome(pool, this.options.cipher, metrics, op, { state: 'failed', description })) {
        logger.warn({ operationId: op.id, operationType: op.type, instanceId: op.instance_id }, 'operation timed out');
      }
    }
    for (const op of await idleOperations(pool, this.options.cipher, this.options.idleSeconds)) {
      await queue.requeue(op.id, op.type);
    }
    const instances = await purgeDeletedInstances(pool, this.options.deletedRetentionHours);
    const bindings = await purgeDeletedBindings(pool, this.options.deletedRetentionHours);
    if (instances + bindings > 0) logger.info({ instances, bindings }, 'forgot deleted resources past retention');
  }
}
