/**
 * Synchronous binds and unbinds (no accepts_incomplete) that several API replicas receive at
 * once: a request that joins a running operation waits for its outcome, however far the
 * replica that started it has got, and gets the same answer (never a 504 before the timeout).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { postgresNames } from '../broker/offerings/postgresql/postgresql-offering.js';
import { TcpProxy } from './tcp-proxy.js';
import {
  REDIS_URL,
  adminQuery,
  bindBody,
  bindingPath,
  deleteQuery,
  deprovisionInstance,
  osb,
  provisionInstance,
  startDepot,
  type TestDepot,
} from './helpers.js';

const roleExists = async (instanceId: string, bindingId: string) =>
  (await adminQuery('select 1 from pg_roles where rolname = $1', [postgresNames(instanceId, bindingId).login]))
    .length === 1;

describe('synchronous binds and unbinds through several replicas', () => {
  let first: TestDepot;
  const replicas: TestDepot[] = [];
  const api = () => [first, replicas[0]!, replicas[1]!];
  before(async () => {
    first = await startDepot('sync-replicas', { role: 'api' });
    replicas.push(await startDepot('sync-replicas-api-2', { role: 'api', shareWith: first }));
    replicas.push(await startDepot('sync-replicas-api-3', { role: 'api', shareWith: first }));
    replicas.push(await startDepot('sync-replicas-worker-1', { role: 'worker', shareWith: first }));
    replicas.push(await startDepot('sync-replicas-worker-2', { role: 'worker', shareWith: first }));
  });
  after(async () => {
    for (const replica of replicas) await replica.close();
    await first.close();
  });

  it('160 binds at once, 4 identical per binding id via different replicas: the same 201/200 body each', async () => {
    const instanceId = await provisionInstance(first);
    const bindingIds = Array.from({ length: 40 }, () => randomUUID());
    const sent = bindingIds.flatMap((bindingId) =>
      [0, 1, 2, 1].map(async (replica) => {
        const res = await osb(api()[replica]!).put(bindingPath(instanceId, bindingId), bindBody());
        return { bindingId, status: res.status, body: res.body as { credentials?: { password: string } } };
      }),
    );
    const answers = await Promise.all(sent);
    for (const answer of answers) {
      assert.ok([200, 201].includes(answer.status), `${answer.status}: ${JSON.stringify(answer.body)}`);
    }
    for (const bindingId of bindingIds) {
      const mine = answers.filter((a) => a.bindingId === bindingId);
      assert.equal(mine.filter((a) => a.status === 201).length >= 1, true, 'one of them created it');
      for (const answer of mine) assert.deepEqual(answer.body, mine[0]!.body);
      assert.ok(mine[0]!.body.credentials?.password);
      assert.ok(await roleExists(instanceId, bindingId));
    }

    // The unbinds likewise: 200 {} for the ones that joined, 410 for one that came after it ended.
    const unbinds = await Promise.all(
      bindingIds.flatMap((bindingId) =>
        [0, 1, 2, 1].map(async (replica) => {
          const res = await osb(api()[replica]!).delete(`${bindingPath(instanceId, bindingId)}?${deleteQuery()}`);
          return { bindingId, status: res.status, body: res.body as unknown };
        }),
      ),
    );
    for (const answer of unbinds) {
      assert.ok([200, 410].includes(answer.status), `${answer.status}: ${JSON.stringify(answer.body)}`);
      if (answer.status === 200) assert.deepEqual(answer.body, {});
    }
    for (const bindingId of bindingIds) {
      assert.ok(unbinds.some((a) => a.bindingId === bindingId && a.status === 200));
      assert.equal(await roleExists(instanceId, bindingId), false);
    }
    await deprovisionInstance(first, instanceId);
  });

  it('a bind that joins one whose job is not queued yet waits for it, and both get the credentials', async () => {
    // A replica that cannot reach Redis records the operation but cannot add its job (the
    // sweeper would add it later); a second replica receives the same request meanwhile.
    const proxy = await TcpProxy.start(REDIS_URL, 6379);
    const env = { REDIS_URL: proxy.via(REDIS_URL) };
    const lagging = await startDepot('sync-replicas-lagging', { role: 'api', shareWith: first, env });
    try {
      const instanceId = await provisionInstance(first);
      const bindingId = randomUUID();
      await proxy.cut();
      const pending = osb(lagging)
        .put(bindingPath(instanceId, bindingId), bindBody())
        .timeout(40_000)
        .then((res) => res); // sent now
      let operationId: string | undefined;
      for (let i = 0; i < 200 && !operationId; i++) {
        const { rows } = await first.depot.pool.query<{ id: string }>(
          'select id from operations where binding_id = $1',
          [bindingId],
        );
        operationId = rows[0]?.id;
        if (!operationId) await new Promise((resolve) => setTimeout(resolve, 25));
      }
      assert.ok(operationId, 'the lagging replica recorded the bind');
      let joinedAnswered = false;
      const joined = osb(replicas[0]!)
        .put(bindingPath(instanceId, bindingId), bindBody())
        .timeout(40_000)
        .then((res) => {
          joinedAnswered = true;
          return res;
        });
      // The lagging replica gives up adding the job after 2 s, and goes on waiting for the outcome.
      for (let i = 0; i < 100 && !lagging.logs.some((line) => line.includes('could not add the job now')); i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await new Promise((resolve) => setTimeout(resolve, 1000)); // time for the second request to join
      assert.equal(await first.depot.queue.jobState(operationId), undefined, 'no job yet');
      assert.equal(joinedAnswered, false, 'the joining request waits: a missing job is not a finished one');
      await first.depot.queue.requeue(operationId, 'bind'); // what the sweeper does for a lost job
      await proxy.restore(); // and the lagging replica's Redis is back
      const [a, b] = await Promise.all([pending, joined]);
      assert.equal(a.status, 201, JSON.stringify(a.body));
      assert.ok([200, 201].includes(b.status), `${b.status} ${JSON.stringify(b.body)}`);
      assert.deepEqual(a.body, b.body);
      assert.ok(await roleExists(instanceId, bindingId));
      await osb(first)
        .delete(`${bindingPath(instanceId, bindingId)}?${deleteQuery()}`)
        .expect(200);
      await deprovisionInstance(first, instanceId);
    } finally {
      await proxy.restore();
      await lagging.close();
      await proxy.close();
    }
  });
});
