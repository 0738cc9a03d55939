import { Queue, QueueEvents, type ConnectionOptions, type Job, type JobsOptions } from 'bullmq';
import type { OperationType } from '../db/operations.js';

export const OPERATIONS_QUEUE = 'operations';

/** The job's payload: the operation row in Postgres says everything else. */
export interface OperationJobData {
  operationId: string;
}

export interface OperationQueueOptions {
  connection: ConnectionOptions;
  prefix: string;
  /** Attempts per operation before it fails for good. */
  attempts?: number;
  /** First retry delay in ms; doubles each attempt. */
  backoffMs?: number;
}

const defaults = { attempts: 5, backoffMs: 1000 };

/**
 * The BullMQ queue every operation runs through. The job id is the operation id, so adding
 * the same operation twice (a retried request, the sweeper) never runs it twice.
 */
export class OperationQueue {
  private readonly queue: Queue<OperationJobData, void, OperationType>;
  private events: QueueEvents | undefined;
  private readonly options: Required<OperationQueueOptions>;
  private readonly jobOptions: JobsOptions;

  constructor(options: OperationQueueOptions) {
    this.options = { ...defaults, ...options };
    this.queue = new Queue(OPERATIONS_QUEUE, { connection: this.options.connection, prefix: this.options.prefix });
    this.jobOptions = {
      attempts: this.options.attempts,
      backoff: { type: 'exponential', delay: this.options.backoffMs },
      removeOnComplete: { age: 3600, count: 10000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    };
  }

  async waitUntilReady(): Promise<void> {
    await this.queue.waitUntilReady();
  }

  async enqueue(operationId: string, type: OperationType): Promise<Job<OperationJobData, void, OperationType>> {
    return this.queue.add(type, { operationId }, { ...this.jobOptions, jobId: operationId });
  }

  /**
   * Adds the operation's job again when it is lost, or when BullMQ keeps it as finished while
   * Postgres says the operation is still in progress (the worker died between the two). A job
   * still waiting or running is left alone.
   */
  async requeue(operationId: string, type: OperationType): Promise<void> {
    const job = await this.queue.getJob(operationId);
    if (job) {
      const state = await job.getState();
      if (state !== 'completed' && state !== 'failed') return;
      await job.remove();
    }
    await this.enqueue(operationId, type);
  }

  /**
   * Waits until the operation's job has finished (completed or failed for good), or until the
   * timeout, for synchronous bind and unbind. The job keeps running after a timeout.
   */
  async waitUntilFinished(operationId: string, timeoutMs: number): Promise<void> {
    this.events ??= new QueueEvents(OPERATIONS_QUEUE, { connection: this.options.connection, prefix: this.options.prefix });
    await this.events.waitUntilReady();
    const job = await this.queue.getJob(operationId);
    if (!job) return; // already removed: it finished
    // Rejects when the job failed, or after the timeout: either way the caller reads Postgres.
    await job.waitUntilFinished(this.events, timeoutMs).catch(() => undefined);
  }

  /** A round trip to Redis (readiness). */
  async ping(): Promise<void> {
    await this.queue.getJobCounts('waiting');
  }

  /** Removes the queue and all its jobs from Redis (tests, and decommissioning a Depot). */
  async obliterate(): Promise<void> {
    await this.queue.obliterate({ force: true });
  }

  async close(): Promise<void> {
    await Promise.all([this.queue.close(), this.events?.close()]);
  }
}
