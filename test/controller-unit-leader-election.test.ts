/**
 * Leader election on a real coordination.k8s.io/v1 Lease in the test kube-apiserver, with the
 * shortest timings the options allow (a 2 s lease, renewed every 200 ms), so each case takes
 * seconds. What is checked is what an operator sees: the Lease's holderIdentity and renewTime,
 * and which candidate was told it started or stopped leading, in which order.
 *
 * A leader that cannot renew is made with a client whose requests to the API server never get
 * an answer (or fail at once) from a chosen moment: the API server and the other candidate are
 * untouched, as when one node loses its network.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import type { Lease } from '../catalog-controller/api/v1beta1.js';
import { KubeApiError, KubeClient } from '../catalog-controller/kube/kube-client.js';
import { LeaderElection } from '../catalog-controller/kube/leader-election.js';
import { Resources } from '../catalog-controller/kube/resources.js';
import { ensureNamespace, startKubeApi, waitFor, type KubeApi } from './kube-helpers.js';

const NS = 'leader-unit';
const LEASE_SECONDS = 2;
const RETRY_MS = 200;
const logger = pino({ level: 'silent' });

let api: KubeApi;
/** Every candidate's leadership changes, in the order they happened. */
let history: string[] = [];

/** A client of the real API server that can be made to hang or fail, like a partitioned node. */
class UnpluggableClient extends KubeClient {
  mode: 'connected' | 'hang' | 'fail' = 'connected';

  override async request(method: string, path: string, body?: unknown, contentType?: string): Promise<unknown> {
    if (this.mode === 'hang') return new Promise<never>(() => {});
    if (this.mode === 'fail') throw new Error(`${method} ${path}: connect ECONNREFUSED`);
    return super.request(method, path, body, contentType);
  }
}

interface Candidate {
  identity: string;
  client: UnpluggableClient;
  election: LeaderElection;
  started: number;
  stopped: number;
}

const candidates: Candidate[] = [];

function candidate(lease: string, identity: string): Candidate {
  const config = new KubeConfig();
  config.loadFromFile(api.kubeconfig);
  const client = new UnpluggableClient(config);
  const c: Candidate = { identity, client, election: undefined as unknown as LeaderElection, started: 0, stopped: 0 };
  c.election = new LeaderElection(
    client,
    { namespace: NS, name: lease, identity, leaseDurationSeconds: LEASE_SECONDS, retryPeriodMs: RETRY_MS },
    logger,
    {
      onStartedLeading: () => {
        c.started++;
        history.push(`${identity} started`);
      },
      onStoppedLeading: () => {
        c.stopped++;
        history.push(`${identity} stopped`);
      },
    },
  );
  candidates.push(c);
  return c;
}

async function lease(name: string): Promise<Lease | undefined> {
  return api.client.find<Lease>(Resources.Lease, name, NS);
}

async function holderOf(name: string): Promise<string | undefined> {
  return (await lease(name))?.spec.holderIdentity ?? undefined;
}

/** Starts both, waits for one to lead; returns [leader, follower]. */
async function electOne(name: string): Promise<[Candidate, Candidate]> {
  const a = candidate(name, `${name}-a`);
  const b = candidate(name, `${name}-b`);
  a.election.start();
  b.election.start();
  const leader = await waitFor(async () => [a, b].find((c) => c.election.isLeader), 20_000, 'a leader');
  const follower = leader === a ? b : a;
  return [leader, follower];
}

before(async () => {
  api = await startKubeApi();
  await ensureNamespace(api, NS);
});

after(async () => {
  for (const c of candidates) {
    c.client.mode = 'connected';
    await c.election.stop();
    c.client.close();
  }
  await api?.stop();
});

describe('leader election', () => {
  test('of two candidates one leads, holds the Lease and renews it; the other stands by', async () => {
    history = [];
    const [leader, follower] = await electOne('one-leads');
    const first = await lease('one-leads');
    assert.equal(first?.spec.holderIdentity, leader.identity);
    assert.equal(first?.spec.leaseDurationSeconds, LEASE_SECONDS);
    // Renewals: renewTime moves on, several times, and the holder stays the same.
    const renewals = new Set<string>();
    await waitFor(
      async () => {
        const current = await lease('one-leads');
        assert.equal(current?.spec.holderIdentity, leader.identity);
        renewals.add(current?.spec.renewTime ?? '');
        return renewals.size >= 4;
      },
      20_000,
      'four renewals',
    );
    // Longer than a lease duration has passed: renewing kept the follower out all along.
    assert.equal(follower.election.isLeader, false);
    assert.equal(follower.started, 0);
    assert.deepEqual(history, [`${leader.identity} started`]);
    assert.equal((await lease('one-leads'))?.spec.leaseTransitions, 0);
  });

  for (const mode of ['hang', 'fail'] as const) {
    test(`a leader whose requests ${mode} stops leading before the other takes over`, async () => {
      history = [];
      const name = `cut-off-${mode}`;
      const [leader, follower] = await electOne(name);
      leader.client.mode = mode;
      await waitFor(async () => (await holderOf(name)) === follower.identity, 30_000, 'the follower to take the Lease');
      await waitFor(async () => follower.started === 1, 20_000, 'the follower to be told it leads');
      assert.equal(leader.election.isLeader, false);
      assert.equal(leader.stopped, 1, 'the old leader was told it stopped leading');
      // Never two leaders: the old one had stopped before the new one started.
      assert.deepEqual(history, [
        `${leader.identity} started`,
        `${leader.identity} stopped`,
        `${follower.identity} started`,
      ]);
      const taken = await lease(name);
      assert.equal(taken?.spec.leaseTransitions, 1);
      // Reachable again, the old leader does not campaign back: its process is expected to exit.
      leader.client.mode = 'connected';
      await new Promise((resolve) => setTimeout(resolve, 3 * RETRY_MS));
      assert.equal(await holderOf(name), follower.identity);
      assert.equal(leader.started, 1);
    });
  }

  test('a leader that stops releases the Lease, and the other candidate takes it over', async () => {
    history = [];
    const alone = candidate('released', 'released-a');
    alone.election.start();
    await waitFor(async () => alone.election.isLeader, 20_000, 'the only candidate to lead');
    await alone.election.stop();
    // Nobody else campaigns yet: what is left is exactly what the leader wrote on its way out.
    const released = await lease('released');
    assert.equal(released?.spec.holderIdentity ?? '', '');
    assert.equal(alone.election.isLeader, false);

    const [leader, follower] = await electOne('handover');
    await leader.election.stop();
    assert.notEqual(await holderOf('handover'), leader.identity, 'released on stop');
    await waitFor(async () => follower.election.isLeader, 20_000, 'the other candidate to lead');
    assert.equal(await holderOf('handover'), follower.identity);
    assert.equal(follower.started, 1);
  });

  test('a leader whose Lease is taken by another holder stops leading', async () => {
    history = [];
    const solo = candidate('taken', 'taken-a');
    solo.election.start();
    await waitFor(async () => solo.election.isLeader, 20_000, 'the candidate to lead');
    // Another holder writes itself in (a replica on a node with a different view, or an operator).
    for (let attempt = 0; ; attempt++) {
      const current = (await lease('taken'))!;
      // MicroTime: RFC 3339 with six fractional digits.
      const now = new Date().toISOString().replace(/Z$/, '000Z');
      try {
        await api.client.update(Resources.Lease, {
          ...current,
          spec: { ...current.spec, holderIdentity: 'intruder', renewTime: now },
        });
        break;
      } catch (error) {
        // A renewal came in between (409 Conflict): read again.
        if (!(error instanceof KubeApiError && error.isConflict) || attempt > 20) throw error;
      }
    }
    await waitFor(async () => solo.stopped === 1, 20_000, 'the candidate to stop leading');
    assert.equal(solo.election.isLeader, false);
    assert.equal(await holderOf('taken'), 'intruder');
  });
});
