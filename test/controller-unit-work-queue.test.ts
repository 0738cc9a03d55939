/**
 * The controller's work queue on its own, in the shape of client-go's rate-limited workqueue: a
 * key queued many times is handled once; a key added while it is being handled is handled once
 * more afterwards and never twice at the same time; distinct keys are handled first in, first
 * out; a failing key is retried after a per-key delay that doubles up to a cap and starts over
 * once a pass is done with the key. Delays run on node:test's mocked clock, so what is checked
 * is what has been handled when the clock reaches a point, never how long anything took.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import pino from 'pino';
import { WorkQueue, type Reconcile, type ReconcileResult } from '../catalog-controller/work-queue.js';

const logger = pino({ level: 'silent' });

/** Lets the queue's promise chains (a reconcile's await, its finally) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface Gate {
  promise: Promise<void>;
  open(): void;
}

function gate(): Gate {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** A reconcile that records every pass and how many passes of each key run at once. */
function recorder(
  behaviour: (key: string, pass: number) => Promise<ReconcileResult | void> | ReconcileResult | void = () => {},
) {
  const handled: string[] = [];
  const running = new Map<string, number>();
  let mostAtOnce = 0;
  const reconcile: Reconcile = async (key) => {
    handled.push(key);
    const now = (running.get(key) ?? 0) + 1;
    running.set(key, now);
    mostAtOnce = Math.max(mostAtOnce, now);
    try {
      return await behaviour(key, handled.filter((k) => k === key).length);
    } finally {
      running.set(key, (running.get(key) ?? 1) - 1);
    }
  };
  return {
    reconcile,
    handled,
    count: (key: string) => handled.filter((k) => k === key).length,
    mostAtOnceOfOneKey: () => mostAtOnce,
  };
}

function newQueue(
  reconcile: Reconcile,
  options: Partial<{ concurrency: number; baseDelayMs: number; maxDelayMs: number }> = {},
) {
  return new WorkQueue('test', reconcile, { concurrency: 1, baseDelayMs: 100, maxDelayMs: 1000, ...options }, logger);
}

beforeEach(() => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
});

afterEach(() => {
  mock.timers.reset();
});

describe('backoff', () => {
  test('the retry delay of a key doubles per consecutive failure and stops at the cap', () => {
    const queue = newQueue(async () => {}, { baseDelayMs: 100, maxDelayMs: 1000 });
    const delays = Array.from({ length: 7 }, () => queue.addRateLimited('a'));
    assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000, 1000]);
  });

  test('each key has its own backoff: one failing key does not slow another', () => {
    const queue = newQueue(async () => {});
    queue.addRateLimited('a');
    queue.addRateLimited('a');
    queue.addRateLimited('a');
    assert.equal(queue.addRateLimited('b'), 100);
    assert.equal(queue.addRateLimited('a'), 800);
  });

  test('a failing reconcile is retried after 100, then 200, then 400 ms; a success resets the backoff', async () => {
    const r = recorder((_key, pass) => {
      if (pass <= 3) throw new Error(`failure ${pass}`);
    });
    const queue = newQueue(r.reconcile);
    queue.start();
    queue.add('a');
    await settle();
    assert.equal(r.count('a'), 1, 'the first pass runs at once');
    // Each retry comes at its delay and not a millisecond before.
    for (const [delay, passes] of [
      [100, 2],
      [200, 3],
      [400, 4],
    ] as const) {
      mock.timers.tick(delay - 1);
      await settle();
      assert.equal(r.count('a'), passes - 1, `not retried before ${delay} ms`);
      mock.timers.tick(1);
      await settle();
      assert.equal(r.count('a'), passes, `retried after ${delay} ms`);
    }
    // Pass 4 succeeded: the next failure starts over at the base delay.
    assert.equal(queue.addRateLimited('a'), 100);
  });

  test('a pass that asks for another look keeps the backoff; `backoff: true` counts as a failure', async () => {
    const r = recorder((_key, pass) => (pass === 1 ? { backoff: true } : { requeueAfterMs: 50 }));
    const queue = newQueue(r.reconcile);
    queue.start();
    queue.add('a');
    await settle();
    mock.timers.tick(100); // the backoff of the first pass
    await settle();
    assert.equal(r.count('a'), 2);
    mock.timers.tick(50); // the requeue the second pass asked for
    await settle();
    assert.equal(r.count('a'), 3);
    // One failure on record and no pass done with the key: the next delay is the second step.
    assert.equal(queue.addRateLimited('a'), 200);
  });

  test('a key waiting out its backoff is not handled early by an add that respects backoff', async () => {
    const r = recorder((_key, pass) => {
      if (pass === 1) throw new Error('fails once');
    });
    const queue = newQueue(r.reconcile);
    queue.start();
    queue.add('a');
    await settle();
    queue.add('a', { respectBackoff: true }); // e.g. the status write of the failed pass
    await settle();
    assert.equal(r.count('a'), 1, 'still waiting out the backoff');
    mock.timers.tick(100);
    await settle();
    assert.equal(r.count('a'), 2);
    // A plain add (a user's edit) is taken at once, backoff or not.
    queue.addRateLimited('a');
    queue.add('a');
    await settle();
    assert.equal(r.count('a'), 3);
  });
});

describe('dedup', () => {
  test('a key added many times while queued is handled once', async () => {
    const r = recorder();
    const queue = newQueue(r.reconcile);
    for (let i = 0; i < 5; i++) queue.add('a');
    queue.start();
    await settle();
    assert.deepEqual(r.handled, ['a']);
  });

  test('a key added while being handled is handled once more afterwards, never at the same time', async () => {
    const first = gate();
    const r = recorder((_key, pass) => (pass === 1 ? first.promise : undefined));
    const queue = newQueue(r.reconcile, { concurrency: 4 });
    queue.start();
    queue.add('a');
    await settle();
    assert.equal(r.count('a'), 1);
    for (let i = 0; i < 3; i++) queue.add('a');
    queue.addAfter('a', 10);
    mock.timers.tick(10); // a delayed add that comes due mid-pass joins the same second pass
    await settle();
    assert.equal(r.count('a'), 1, 'not started again while the first pass runs, though workers are free');
    first.open();
    await settle();
    assert.equal(r.count('a'), 2, 'exactly one more pass');
    assert.equal(r.mostAtOnceOfOneKey(), 1);
  });

  test('an add that respects backoff, made mid-pass, waits for the next step that pass asked for', async () => {
    const first = gate();
    const r = recorder((_key, pass) => (pass === 1 ? first.promise.then(() => ({ requeueAfterMs: 500 })) : undefined));
    const queue = newQueue(r.reconcile);
    queue.start();
    queue.add('a');
    await settle();
    queue.add('a', { respectBackoff: true }); // the echo of the pass's own status write
    first.open();
    await settle();
    assert.equal(r.count('a'), 1, 'not brought forward by its own status write');
    mock.timers.tick(500);
    await settle();
    assert.equal(r.count('a'), 2);
  });

  test('an add that respects backoff, made while the key is handled, is not lost when that pass is done', async () => {
    // E.g. an instance whose deletion waits for its bindings: the last binding goes (an add that
    // respects backoff) while a pass still sees it and ends with nothing more to do.
    const first = gate();
    const r = recorder((_key, pass) => (pass === 1 ? first.promise : undefined));
    const queue = newQueue(r.reconcile);
    queue.start();
    queue.add('a');
    await settle();
    queue.add('a', { respectBackoff: true });
    queue.add('a', { respectBackoff: true });
    first.open();
    await settle();
    assert.equal(r.count('a'), 2, 'handled once more, not twice more');
    assert.equal(r.mostAtOnceOfOneKey(), 1);
  });

  test('an add that respects backoff, made while a failing pass runs, waits out the backoff', async () => {
    const first = gate();
    const r = recorder(async (_key, pass) => {
      if (pass === 1) {
        await first.promise;
        throw new Error('fails once');
      }
    });
    const queue = newQueue(r.reconcile);
    queue.start();
    queue.add('a');
    await settle();
    queue.add('a', { respectBackoff: true });
    first.open();
    await settle();
    assert.equal(r.count('a'), 1);
    mock.timers.tick(100);
    await settle();
    assert.equal(r.count('a'), 2);
  });

  test('many keys and workers: each key is handled alone, and every key added is handled', async () => {
    const gates = new Map<string, Gate>();
    const r = recorder(async (key, pass) => {
      if (pass === 1) {
        const g = gate();
        gates.set(key, g);
        await g.promise;
      }
    });
    const queue = newQueue(r.reconcile, { concurrency: 3 });
    queue.start();
    const keys = ['a', 'b', 'c', 'd', 'e'];
    for (const key of keys) queue.add(key);
    await settle();
    assert.deepEqual(r.handled, ['a', 'b', 'c'], 'three workers, three keys at once');
    for (const key of keys) queue.add(key); // all five again, three of them mid-pass
    for (const key of ['a', 'b', 'c', 'd', 'e']) {
      gates.get(key)?.open();
      await settle();
    }
    await settle();
    for (const key of keys) assert.equal(r.count(key), key === 'd' || key === 'e' ? 1 : 2, key);
    assert.equal(r.mostAtOnceOfOneKey(), 1);
  });
});

describe('ordering', () => {
  test('distinct keys are handled first in, first out', async () => {
    const r = recorder();
    const queue = newQueue(r.reconcile);
    for (const key of ['c', 'a', 'b', 'a', 'd']) queue.add(key);
    queue.start();
    await settle();
    assert.deepEqual(r.handled, ['c', 'a', 'b', 'd']);
  });

  test('a key added again after its pass goes to the back of the line', async () => {
    const first = gate();
    const r = recorder((key, pass) => (key === 'a' && pass === 1 ? first.promise : undefined));
    const queue = newQueue(r.reconcile);
    queue.start();
    queue.add('a');
    await settle();
    queue.add('b');
    queue.add('a'); // mid-pass: re-queued when the pass ends, behind b
    queue.add('c');
    first.open();
    await settle();
    assert.deepEqual(r.handled, ['a', 'b', 'c', 'a']);
  });
});

describe('delayed adds', () => {
  test('addAfter queues the key when its delay has passed, not before', async () => {
    const r = recorder();
    const queue = newQueue(r.reconcile);
    queue.start();
    queue.addAfter('a', 500);
    mock.timers.tick(499);
    await settle();
    assert.equal(r.count('a'), 0);
    mock.timers.tick(1);
    await settle();
    assert.equal(r.count('a'), 1);
  });

  test('of two delayed adds of a key the earlier deadline wins, and the key is handled once', async () => {
    const r = recorder();
    const queue = newQueue(r.reconcile);
    queue.start();
    queue.addAfter('late-then-early', 500);
    queue.addAfter('late-then-early', 100);
    queue.addAfter('early-then-late', 100);
    queue.addAfter('early-then-late', 500);
    mock.timers.tick(100);
    await settle();
    assert.deepEqual([...r.handled].sort(), ['early-then-late', 'late-then-early']);
    mock.timers.tick(1000);
    await settle();
    assert.equal(r.handled.length, 2, 'the later deadlines were dropped');
  });

  test('a delay of zero or less is an add now', async () => {
    const r = recorder();
    const queue = newQueue(r.reconcile);
    queue.start();
    queue.addAfter('a', 0);
    queue.addAfter('b', -5);
    await settle();
    assert.deepEqual(r.handled, ['a', 'b']);
  });

  test('a pass asking for requeueAfterMs is handled again at that time', async () => {
    const r = recorder((_key, pass) => (pass === 1 ? { requeueAfterMs: 300 } : undefined));
    const queue = newQueue(r.reconcile);
    queue.start();
    queue.add('a');
    await settle();
    mock.timers.tick(299);
    await settle();
    assert.equal(r.count('a'), 1);
    mock.timers.tick(1);
    await settle();
    assert.equal(r.count('a'), 2);
    mock.timers.tick(10_000);
    await settle();
    assert.equal(r.count('a'), 2, 'done: not handled again');
  });
});

describe('shutdown', () => {
  test('waits for the pass under way, then takes no more keys and drops pending delays', async () => {
    const first = gate();
    const r = recorder((key) => (key === 'a' ? first.promise : undefined));
    const queue = newQueue(r.reconcile);
    queue.start();
    queue.add('a');
    queue.add('b');
    queue.addAfter('c', 100);
    await settle();
    let finished = false;
    const stopping = queue.shutdown(60_000).then(() => (finished = true));
    await settle();
    assert.equal(finished, false, 'still waiting for the pass of a');
    first.open();
    await stopping;
    mock.timers.tick(1000);
    await settle();
    assert.deepEqual(r.handled, ['a']);
  });
});
