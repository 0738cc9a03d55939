import type { Logger } from 'pino';

export interface WorkQueueOptions {
  /** Keys handled at once; one key is never handled twice at the same time. */
  concurrency: number;
  /** First retry delay after a failure; doubles per consecutive failure of the key. */
  baseDelayMs: number;
  /** Cap on the retry delay. */
  maxDelayMs: number;
}

/** What a reconcile asks of its queue: nothing, or another pass after a delay. */
export interface ReconcileResult {
  requeueAfterMs?: number;
  /** Try again after the key's backoff delay (a retriable failure already reported in status). */
  backoff?: boolean;
}

export type Reconcile = (key: string) => Promise<ReconcileResult | void>;

export interface QueueMetrics {
  reconciled(queue: string, outcome: 'success' | 'error', seconds: number): void;
  depth(queue: string, size: number): void;
}

/**
 * A rate-limited work queue per kind, after client-go's workqueue: a key added many times is
 * handled once; a key being handled is queued again, not handled twice; a failing key is retried
 * with per-key exponential backoff (baseDelayMs · 2^n, capped at maxDelayMs) until it succeeds.
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  /** Keys added while being processed: they go back in the queue when done. */
  private readonly dirty = new Set<string>();
  /** Keys added with `respectBackoff` while being processed: back in the queue if that pass was done with them. */
  private readonly dirtyIfDone = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly idleWaiters: Array<() => void> = [];
  private active = 0;
  private running = false;

  constructor(
    readonly name: string,
    private readonly reconcile: Reconcile,
    private readonly options: WorkQueueOptions,
    private readonly logger: Logger,
    private readonly metrics?: QueueMetrics,
  ) {}

  start(): void {
    this.running = true;
    this.pump();
  }

  /**
   * Queues the key now. With `respectBackoff`, a key waiting out a retry delay stays waiting:
   * a status change (often our own write) must not turn a backed-off retry into an immediate one.
   */
  add(key: string, options: { respectBackoff?: boolean } = {}): void {
    if (options.respectBackoff && this.timers.has(key) && (this.failures.get(key) ?? 0) > 0) return;
    if (this.processing.has(key)) {
      // The pass under way decides what comes next: when it asks for another pass (a delay, a
      // backoff), that pass sees this change, and a status change it caused itself must not
      // bring it sooner. When it is done with the key, the change still gets a pass: it may not
      // be its own (a binding that went while its instance was being looked at).
      if (options.respectBackoff) this.dirtyIfDone.add(key);
      else this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.metrics?.depth(this.name, this.queue.length);
    this.pump();
  }

  /** Adds the key after a delay; an earlier pending deadline for the same key is kept. */
  addAfter(key: string, delayMs: number): void {
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Adds the key after its backoff delay, and counts one more failure. */
  addRateLimited(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const delay = Math.min(this.options.baseDelayMs * 2 ** failures, this.options.maxDelayMs);
    this.addAfter(key, delay);
    return delay;
  }

  /** Resets the key's backoff. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Stops taking keys and waits for the ones being handled, at most `timeoutMs`. */
  async shutdown(timeoutMs: number): Promise<void> {
    this.running = false;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    if (this.active === 0) return;
    await Promise.race([
      new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
      new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref()),
    ]);
  }

  private pump(): void {
    while (this.running && this.active < this.options.concurrency && this.queue.length > 0) {
      const key = this.queue.shift() as string;
      this.queued.delete(key);
      this.processing.add(key);
      this.active++;
      void this.handle(key);
    }
  }

  private async handle(key: string): Promise<void> {
    const started = performance.now();
    let done = false;
    try {
      const result = await this.reconcile(key);
      // Only a pass that is done with the key resets its backoff: a pass that asks for another
      // look (a poll, a next step) keeps it, so retry → orphan mitigation → retry still backs off.
      if (result?.backoff) this.addRateLimited(key);
      else if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
      else {
        this.forget(key);
        done = true;
      }
      this.metrics?.reconciled(this.name, 'success', (performance.now() - started) / 1000);
    } catch (error) {
      const delay = this.addRateLimited(key);
      this.metrics?.reconciled(this.name, 'error', (performance.now() - started) / 1000);
      this.logger.warn({ err: error, queue: this.name, key, retryInMs: delay }, 'reconcile failed; will retry');
    } finally {
      this.processing.delete(key);
      this.active--;
      const dirty = this.dirty.delete(key);
      const dirtyIfDone = this.dirtyIfDone.delete(key);
      if (dirty || (dirtyIfDone && done)) this.add(key);
      this.metrics?.depth(this.name, this.queue.length);
      if (this.active === 0 && !this.running) this.idleWaiters.splice(0).forEach((resolve) => resolve());
      this.pump();
    }
  }
}
