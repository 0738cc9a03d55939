import { Queue, QueueEvents, type Job, type JobsOptions } from 'bullmq';
import type { RedisOptions } from 'ioredis';
import type { OperationType } from '../db/operations.js';

export const OPERATIONS_QUEUE = 'operations';

/** The job's payload: the operation row in Postgres says everything else. */
export interface OperationJobData {
  operationId: string;
}

export interface OperationQueueOptions {
  /** Options, not a client: the queue's own connection pipelines what it sends. */
  connection: RedisOptions;
  prefix: string;
  /** Attempts per operation before it fails for good. */
  attempts?: number;
  /** First retry delay in ms; doubles each attempt. */
  backoffMs?: number;
}

/** The job states a queue's depth is told in: waiting to run, retrying later, running, given up. */
export const QUEUE_JOB_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'failed'] as const;
export type QueueJobState = (typeof QUEUE_JOB_STATES)[number];

const defaults = { attempts: 5, backoffMs: 1000 };
/** How often a waiter reads the operation again when no job outcome wakes it. */
const RECHECK_MS = 500;

/**
 * The BullMQ queue every operation runs through. The job id is the operation id, so adding
 * the same operation twice (a retried request, the sweeper) never runs it twice.
 */
export class OperationQueue {
  private readonly queue: Queue<OperationJobData, void, OperationType>;
  private events: QueueEvents | undefined;
  /** Callbacks waiting for an outcome of the job with this id (synchronous binds and unbinds). */
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly options: Required<OperationQueueOptions>;
  private readonly jobOptions: JobsOptions;

  constructor(options: OperationQueueOptions) {
    this.options = { ...defaults, ...options };
    // The jobs that concurrent requests add in one turn of the event loop go to Redis as one
    // pipeline (each still its own script, answered one by one: a 202 waits for its own job).
    const connection = { ...this.options.connection, enableAutoPipelining: true };
    this.queue = new Queue(OPERATIONS_QUEUE, { connection, prefix: this.options.prefix });
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
   * Waits until `ended()` says the operation is over (the caller reads its row: Postgres is the
   * truth), asking again at each outcome of its job and at least every RECHECK_MS. A job that is
   * missing says nothing: another replica may not have added it yet, or it finished and was
   * removed. Resolves false after `timeoutMs`; the job goes on.
   */
  async waitUntilEnded(operationId: string, timeoutMs: number, ended: () => Promise<boolean>): Promise<boolean> {
    this.listen();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let wake!: () => void;
      const outcome = new Promise<void>((resolve) => (wake = resolve));
      const waiting = this.waiters.get(operationId) ?? new Set();
      this.waiters.set(operationId, waiting.add(wake)); // before the check, so no outcome slips between
      let timer: NodeJS.Timeout | undefined;
      try {
        if (await ended()) return true;
        const remaining = deadline - Date.now();
        if (remaining <= 0) return false;
        await Promise.race([
          outcome,
          new Promise((resolve) => (timer = setTimeout(resolve, Math.min(remaining, RECHECK_MS)))),
        ]);
      } finally {
        clearTimeout(timer);
        waiting.delete(wake);
        if (waiting.size === 0) this.waiters.delete(operationId);
      }
    }
  }

  /**
   * Listens to the queue's job outcomes (once per process) and wakes their waiters. Not awaited:
   * while Redis is away the waiters go on reading Postgres every RECHECK_MS.
   */
  private listen(): void {
    if (this.events) return;
    this.events = new QueueEvents(OPERATIONS_QUEUE, {
      connection: this.options.connection,
      prefix: this.options.prefix,
    });
    const wake = ({ jobId }: { jobId: string }) => {
      for (const waiter of this.waiters.get(jobId) ?? []) waiter();
    };
    this.events.on('completed', wake);
    this.events.on('failed', wake);
    this.events.on('error', () => undefined); // reconnects by itself; the waiters do not depend on it
  }

  /** The BullMQ state of the operation's job (`completed`, `failed`, `active`, …); undefined without one. */
  async jobState(operationId: string): Promise<string | undefined> {
    return (await this.queue.getJob(operationId))?.getState();
  }

  /** Jobs by BullMQ state (metrics: the queue's depth). */
  async jobCounts(): Promise<Record<QueueJobState, number>> {
    const counts = await this.queue.getJobCounts(...QUEUE_JOB_STATES);
    return Object.fromEntries(QUEUE_JOB_STATES.map((state) => [state, counts[state] ?? 0])) as Record<
      QueueJobState,
      number
    >;
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
