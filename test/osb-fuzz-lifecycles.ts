/**
 * Lifecycles of valid requests for test/fuzz-osb.test.ts, on ids never seen before: provision,
 * poll, fetch, a repeated PUT, update, bind, fetch the binding, unbind, deprovision, each with
 * neutral mutations (versions, content types, charsets, encodings, unknown fields), and between
 * the steps refused requests aimed at the lifecycle's own instance and binding. Every 4xx, of a
 * step or a refused request, is checked against digests of the instance's rows.
 */
import fc from 'fast-check';
import { answerProblem, type Answer } from './fuzz-client.js';
import {
  describeRequest,
  freshId,
  osbGenerators,
  plainRequest,
  validRequest,
  type Endpoint,
  type FuzzPlan,
  type FuzzRequest,
  type FuzzService,
} from './osb-fuzz-requests.js';

export interface Lifecycle {
  instanceId: string;
  bindingId: string;
  service: FuzzService;
  plan: FuzzPlan;
  /** The steps in order; `probe` steps are refused requests. */
  steps: Array<{ kind: 'step' | 'probe'; request: FuzzRequest }>;
}

export interface LifecycleContext {
  send(request: FuzzRequest): Promise<Answer>;
  /** Digests of the instance's rows (helpers.ts rowDigests). */
  digest(instanceId: string): Promise<Record<string, string>>;
}

const INSTANCE_ENDPOINTS: Endpoint[] = ['provision', 'update', 'deprovision'];
const BINDING_ENDPOINTS: Endpoint[] = ['bind', 'unbind'];

/** A lifecycle on one of `plans` (each with its service), with 1-3 refused requests between steps. */
export function lifecycle(services: FuzzService[], plans: Array<[FuzzService, FuzzPlan]>): fc.Arbitrary<Lifecycle> {
  return fc
    .tuple(freshId, freshId, fc.constantFrom(...plans))
    .filter(([instanceId, bindingId]) => instanceId !== bindingId)
    .chain(([instanceId, bindingId, [service, plan]]) => {
      const instance = { id: instanceId, serviceId: service.id, planId: plan.id, state: 'live' as const };
      const g = osbGenerators({
        services,
        instances: [{ ...instance, bindings: [{ id: bindingId, live: true }] }],
        operations: [],
      });
      const probes = (endpoints: Endpoint[]) => fc.array(g.refused(endpoints), { minLength: 1, maxLength: 3 });
      const async = fc.constantFrom<Array<[string, string]>>([], [['accepts_incomplete', 'true']]);
      const ids = { service_id: service.id, plan_id: plan.id };
      const otherPlan = fc.constantFrom(...plans.filter(([s]) => s.id === service.id).map(([, p]) => p));
      return fc
        .record({
          provision: g.body('provision', service, plan),
          update: fc.option(fc.tuple(g.body('update', service, plan), fc.option(otherPlan, { nil: undefined })), {
            nil: undefined,
          }),
          bind: fc.option(fc.tuple(g.body('bind', service, plan), async), { freq: 5, nil: undefined }),
          unbindAsync: async,
          hints: fc.boolean(),
          instanceProbes: probes(INSTANCE_ENDPOINTS),
          bindingProbes: probes(BINDING_ENDPOINTS),
        })
        .chain((parts) => {
          const query = parts.hints
            ? [['service_id', service.id] as [string, string], ['plan_id', plan.id] as [string, string]]
            : [];
          const del = (q: Array<[string, string]>): Array<[string, string]> => [
            ...q,
            ['service_id', service.id],
            ['plan_id', plan.id],
          ];
          const provision = { ...parts.provision, ...ids };
          const update = parts.update && {
            ...parts.update[0],
            service_id: service.id,
            ...(parts.update[1] ? { plan_id: parts.update[1].id } : {}),
          };
          if (update && !parts.update?.[1]) delete update.plan_id;
          const valid = (endpoint: Endpoint, q: Array<[string, string]>, body?: unknown, withBinding = false) =>
            validRequest({ endpoint, instanceId, ...(withBinding ? { bindingId } : {}), query: q, body });
          const ASYNC: Array<[string, string]> = [['accepts_incomplete', 'true']];
          return fc
            .record({
              provision: valid('provision', ASYNC, provision),
              get: valid('getInstance', query),
              update: update ? valid('update', ASYNC, update) : fc.constant(undefined),
              bind: parts.bind
                ? valid('bind', parts.bind[1], { ...parts.bind[0], ...ids }, true)
                : fc.constant(undefined),
              getBinding: valid('getBinding', query, undefined, true),
              unbind: valid('unbind', del(parts.unbindAsync), undefined, true),
              deprovision: valid('deprovision', del(ASYNC)),
            })
            .map((r): Lifecycle => {
              const step = (request: FuzzRequest | undefined) => (request ? [{ kind: 'step' as const, request }] : []);
              const probe = (list: FuzzRequest[]) => list.map((request) => ({ kind: 'probe' as const, request }));
              return {
                instanceId,
                bindingId,
                service,
                plan,
                steps: [
                  ...step(r.provision),
                  ...probe(parts.instanceProbes),
                  ...step(r.get),
                  ...step(r.provision), // the same PUT again: 200, nothing changes
                  ...step(r.update),
                  ...step(r.bind),
                  ...(r.bind ? [...step(r.getBinding), ...probe(parts.bindingProbes), ...step(r.unbind)] : []),
                  ...step(r.deprovision),
                  ...step(r.get),
                ],
              };
            });
        });
    });
}

/** Runs a lifecycle's steps in order; what went wrong (empty if nothing). Counts requests in `sent`. */
export async function runLifecycle(l: Lifecycle, context: LifecycleContext): Promise<string[]> {
  const problems: string[] = [];
  const send = async (request: FuzzRequest): Promise<Answer | undefined> => {
    try {
      const answer = await context.send(request);
      const problem = answerProblem(request, answer);
      if (problem) problems.push(problem);
      return answer;
    } catch (error) {
      problems.push(`${(error as Error).message}: ${describeRequest(request)}`);
      return undefined;
    }
  };
  for (const { request } of l.steps) {
    const before = await context.digest(l.instanceId);
    const answer = await send(request);
    if (!answer) continue;
    if (answer.status >= 400 && answer.status < 500) {
      const after = await context.digest(l.instanceId);
      if (JSON.stringify(after) !== JSON.stringify(before)) {
        problems.push(`a ${answer.status} changed rows of instance ${l.instanceId}: ${describeRequest(request)}`);
      }
    }
    if (answer.status === 202) {
      const binding = request.endpoint === 'bind' || request.endpoint === 'unbind';
      await poll(l, binding, operationOf(answer), send, problems);
    }
  }
  return problems;
}

function operationOf(answer: Answer): string | undefined {
  try {
    const { operation } = JSON.parse(answer.body.toString()) as { operation?: unknown };
    return typeof operation === 'string' ? operation : undefined;
  } catch {
    return undefined;
  }
}

/** Polls last_operation until the operation has ended (it must, within 10 s: the test plans do nothing). */
async function poll(
  l: Lifecycle,
  binding: boolean,
  operation: string | undefined,
  send: (request: FuzzRequest) => Promise<Answer | undefined>,
  problems: string[],
): Promise<void> {
  const request = plainRequest({
    endpoint: binding ? 'lastBindingOperation' : 'lastOperation',
    instanceId: l.instanceId,
    ...(binding ? { bindingId: l.bindingId } : {}),
    query: operation ? [['operation', operation]] : [],
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const answer = await send(request);
    if (!answer || answer.status !== 200) return;
    const { state } = JSON.parse(answer.body.toString()) as { state?: string };
    if (state !== 'in progress') return;
    if (Date.now() > deadline) {
      problems.push(`still in progress after 10 s: ${describeRequest(request)}`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
