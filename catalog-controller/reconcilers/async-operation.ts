import type { JsonObject, LastOperationResponse } from '../../osb/index.js';
import {
  ABANDON_ANNOTATION,
  ConditionType,
  Reason,
  type Condition,
  type ConditionStatus,
  type KubeObject,
  type TeardownStatus,
} from '../api/v1beta1.js';
import { findCondition, putCondition } from '../conditions.js';
import type { ControllerServices } from '../controller-services.js';
import { objectKey, type Resource } from '../kube/resources.js';
import { describeOutcome, type OsbOutcome } from '../osb-client/osb-client.js';
import type { ReconcileResult } from '../work-queue.js';
import { Blocked, RETRY_TIMEOUT_MESSAGE, asObject, pastRetryDuration, removeFinalizer } from './common.js';

/** The status fields that instances and bindings share for their operations. */
export interface OperationStatus<Operation extends string> {
  conditions?: Condition[];
  asyncOpInProgress?: boolean;
  orphanMitigationInProgress?: boolean;
  lastOperation?: string;
  currentOperation?: Operation | '';
  observedGeneration?: number;
  operationStartTime?: string;
  inProgressProperties?: object;
  externalProperties?: object;
}

/** An object whose operations the broker may run asynchronously: a ServiceInstance or a ServiceBinding. */
export type OperatedObject<Operation extends string, S extends OperationStatus<Operation>> = KubeObject & {
  status?: S;
};

/** A 202 from the broker, polled from memory first; `dueAt` keeps events from bringing polls forward. */
export interface PendingOperation<Operation extends string> {
  operation: Operation;
  /** OSB operation string from the 202 body. */
  osbOperation: string | undefined;
  polls: number;
  /** Not polled before this time (ms). */
  dueAt: number;
}

/** What differs between the kinds whose operations are asynchronous. */
export interface OperationKind<
  Operation extends string,
  T extends OperatedObject<Operation, S>,
  S extends OperationStatus<Operation>,
> {
  resource: Resource;
  /** The kind in messages: "instance", "binding". */
  noun: string;
  /** The operation that makes the object at the broker (Provision, Bind): the one polled when status names none. */
  create: Operation;
  /** The operation that removes it (Deprovision, Unbind). */
  teardown: Operation;
  /** The Ready reason and message while each operation runs asynchronously. */
  progress: Record<Operation, { reason: string; message: string }>;
  /** The Ready reason of a teardown that failed (DeprovisionCallFailed, UnbindCallFailed). */
  teardownFailedReason: string;
  /** The Ready reason and message of a teardown that succeeded, and of its Event when the object is deleted. */
  tornDown: { reason: string; message: string };
  /** Put before the message of an orphan mitigation that gave up (instances name it; bindings do not). */
  orphanMitigationGaveUpPrefix: string;
  /** Ready's status while a teardown's poll fails (instances: Unknown; bindings: False). */
  teardownPollErrorStatus: ConditionStatus;
  /** A blocked-for-good object also loses its inProgressProperties and operationStartTime (instances). */
  blockedForGoodClearsProgress: boolean;
  /** A teardown that gave up keeps status.lastOperation (bindings). */
  gaveUpKeepsLastOperation: boolean;
  writeStatus(object: T, mutate: (status: S) => void): Promise<T>;
  /** status.deprovisionStatus or status.unbindStatus. */
  setTeardownStatus(status: S, value: TeardownStatus): void;
  /** What else a teardown that succeeded changes in status. */
  markTornDown(status: S, orphanMitigation: boolean): void;
  /** The result of a teardown that succeeded on an object that is not being deleted. */
  afterTornDown(written: T): ReconcileResult | void;
}

/** A last_operation answer, and what was being polled. */
export interface Poll<Operation extends string> {
  operation: Operation;
  pending: PendingOperation<Operation> | undefined;
  osbOperation: string | undefined;
  outcome: OsbOutcome;
  /** The plan's maximum_polling_duration in seconds, when it has one. */
  maximumPollingSeconds?: number | undefined;
}

type Result = Promise<ReconcileResult | void>;

/** How a creating operation (provision, update, bind) ends; a teardown's ends are the machine's own. */
export interface CreateEnds {
  succeeded(): Result;
  /** The broker says the operation failed: `message` is "<Operation> call failed: <description>". */
  failed(message: string): Result;
  /** 400 Bad Request to the poll; without it, a 400 is a poll error like any other. */
  refused?(message: string): Result;
  /** Past the plan's maximum_polling_duration or RECONCILIATION_RETRY_DURATION_SECONDS. */
  timedOut(message: string): Result;
}

/**
 * The asynchronous operations of one kind (spec, "Polling Last Operation"): the polls in memory,
 * the outcomes of a poll, and how a teardown (deprovision, unbind) is retried, given up on and
 * finished. Status is written before and after every broker call, so a restarted controller
 * resumes from it.
 */
export class AsyncOperations<
  Operation extends string,
  T extends OperatedObject<Operation, S>,
  S extends OperationStatus<Operation>,
> {
  private readonly pending = new Map<string, PendingOperation<Operation>>();

  constructor(
    private readonly ctx: ControllerServices,
    private readonly kind: OperationKind<Operation, T, S>,
  ) {}

  pendingOf(key: string): PendingOperation<Operation> | undefined {
    return this.pending.get(key);
  }

  forget(key: string): void {
    this.pending.delete(key);
  }

  /** Events (our own status writes among them) do not make polls come sooner than planned. */
  notDue(pending: PendingOperation<Operation> | undefined): ReconcileResult | undefined {
    if (pending && Date.now() < pending.dueAt) return { requeueAfterMs: pending.dueAt - Date.now() };
    return undefined;
  }

  /** The operation being polled: the one in memory, else the one status records. */
  operationOf(object: T, pending: PendingOperation<Operation> | undefined): Operation {
    const status = object.status;
    if (pending) return pending.operation;
    if (status?.orphanMitigationInProgress) return this.kind.teardown;
    return status?.currentOperation || this.kind.create;
  }

  /** The OSB operation string to poll with: from the 202 in memory, else from status. */
  osbOperationOf(object: T, pending: PendingOperation<Operation> | undefined): string | undefined {
    return pending?.osbOperation ?? object.status?.lastOperation;
  }

  /** The broker answered 202: polled after the first delay. */
  accepted(object: T, operation: Operation, body: JsonObject): ReconcileResult {
    this.pending.set(objectKey(object.metadata), {
      operation,
      osbOperation: typeof body.operation === 'string' ? body.operation : undefined,
      polls: 0,
      dueAt: Date.now() + this.ctx.config.pollInitialDelayMs,
    });
    return { requeueAfterMs: this.ctx.config.pollInitialDelayMs };
  }

  /**
   * The end of a poll: succeeded, failed, 410 Gone while tearing down (a success), a 400, the
   * plan's maximum_polling_duration or the retry duration passed; otherwise still running (or
   * the poll failed) and polled again after the broker's Retry-After or a doubling delay.
   */
  async polled(object: T, poll: Poll<Operation>, ends: CreateEnds): Result {
    const key = objectKey(object.metadata);
    const { operation, outcome } = poll;
    const teardown = operation === this.kind.teardown;
    const orphanMitigation = object.status?.orphanMitigationInProgress === true;
    // 410 Gone to a teardown's poll: the object is gone at the broker, which is what was asked.
    if (teardown && outcome.kind === 'response' && outcome.status === 410) return this.tornDown(object);
    const answer = lastOperationAnswer(outcome);
    if (answer?.state === 'succeeded') {
      this.pending.delete(key);
      return teardown ? this.tornDown(object) : ends.succeeded();
    }
    if (answer?.state === 'failed') {
      this.pending.delete(key);
      const message = `${operation} call failed: ${answer.description ?? 'the broker gave no description'}`;
      return teardown ? this.teardownRetry(object, orphanMitigation, message) : ends.failed(message);
    }
    if (outcome.kind === 'response' && outcome.status === 400 && !teardown && ends.refused) {
      this.pending.delete(key);
      return ends.refused(`Error polling last operation: ${describeOutcome(outcome)}`);
    }
    const timedOut = this.pollTimeout(object, poll.maximumPollingSeconds);
    if (timedOut) {
      this.pending.delete(key);
      return teardown ? this.teardownGaveUp(object, orphanMitigation, timedOut) : ends.timedOut(timedOut);
    }
    await this.recordProgress(object, poll, answer);
    const polls = (poll.pending?.polls ?? 0) + 1;
    const delay = this.pollDelayMs(outcome, polls);
    this.pending.set(key, { operation, osbOperation: poll.osbOperation, polls, dueAt: Date.now() + delay });
    return { requeueAfterMs: delay };
  }

  /** Why polling stops: the plan's maximum_polling_duration or the retry duration passed; else undefined. */
  private pollTimeout(object: T, maximumPollingSeconds: number | undefined): string | undefined {
    const startTime = object.status?.operationStartTime;
    const started = Date.parse(startTime ?? '') || Date.now();
    if (maximumPollingSeconds !== undefined && Date.now() - started > maximumPollingSeconds * 1000) {
      return `The operation did not finish within the plan's maximum_polling_duration of ${maximumPollingSeconds} s`;
    }
    return pastRetryDuration(this.ctx, startTime) ? RETRY_TIMEOUT_MESSAGE : undefined;
  }

  /**
   * The operation still runs (or the poll failed): written to status once, so a restart resumes
   * polling, and again only when the reason or the broker's description changes.
   */
  private async recordProgress(
    object: T,
    poll: Poll<Operation>,
    answer: LastOperationResponse | undefined,
  ): Promise<void> {
    const { operation, osbOperation, outcome } = poll;
    const status = object.status;
    const teardown = operation === this.kind.teardown;
    const inProgress = answer?.state === 'in progress';
    const reason = inProgress ? this.kind.progress[operation].reason : Reason.ErrorPollingLastOperation;
    const base = inProgress
      ? this.kind.progress[operation].message
      : `Error polling last operation: ${describeOutcome(outcome)}`;
    const message = inProgress && answer?.description ? `${base} (${answer.description})` : base;
    const current = findCondition(status?.conditions, ConditionType.Ready);
    if (status?.asyncOpInProgress && current?.reason === reason && current.message === message) return;
    const readyStatus = teardown && !inProgress ? this.kind.teardownPollErrorStatus : 'False';
    await this.kind.writeStatus(object, (s) => {
      s.asyncOpInProgress = true;
      if (osbOperation) s.lastOperation = osbOperation;
      else delete s.lastOperation;
      if (teardown && !s.orphanMitigationInProgress) s.currentOperation = this.kind.teardown;
      putCondition(s, ConditionType.Ready, readyStatus, reason, message);
    });
  }

  /** The wait before the next poll: the broker's Retry-After, else doubling from the first delay, capped. */
  private pollDelayMs(outcome: OsbOutcome, polls: number): number {
    if (outcome.kind === 'response' && outcome.retryAfterSeconds !== undefined) return outcome.retryAfterSeconds * 1000;
    return Math.min(this.ctx.config.pollInitialDelayMs * 2 ** polls, this.ctx.config.pollMaxDelayMs);
  }

  /** A teardown that failed and will be retried, behind the key's backoff. */
  async teardownRetry(object: T, orphanMitigation: boolean, message: string): Promise<ReconcileResult> {
    await this.kind.writeStatus(object, (s) => {
      putCondition(s, ConditionType.Ready, 'Unknown', this.kind.teardownFailedReason, message);
      delete s.asyncOpInProgress;
      delete s.lastOperation;
      if (orphanMitigation) s.orphanMitigationInProgress = true;
    });
    return { backoff: true };
  }

  /** A teardown past its time: Failed, and stuck until the user abandons the object (depot/abandon). */
  async teardownGaveUp(object: T, orphanMitigation: boolean, message: string): Promise<void> {
    const { noun } = this.kind;
    const hint = object.metadata.deletionTimestamp
      ? ` To remove the ${noun} anyway, annotate it with ${ABANDON_ANNOTATION}="true".`
      : '';
    const readyReason = orphanMitigation ? Reason.OrphanMitigationFailed : this.kind.teardownFailedReason;
    const readyMessage = `${orphanMitigation ? this.kind.orphanMitigationGaveUpPrefix : ''}${message}.${hint}`;
    await this.kind.writeStatus(object, (s) => {
      putCondition(s, ConditionType.Ready, 'Unknown', readyReason, readyMessage);
      putCondition(s, ConditionType.Failed, 'True', Reason.ErrorReconciliationRetryTimeout, `${message}.${hint}`);
      this.kind.setTeardownStatus(s, 'Failed');
      delete s.orphanMitigationInProgress;
      delete s.asyncOpInProgress;
      if (!this.kind.gaveUpKeepsLastOperation) delete s.lastOperation;
      delete s.currentOperation;
    });
  }

  /**
   * A teardown that succeeded (or found the object gone): a deleted object loses our finalizer;
   * otherwise (orphan mitigation, or a failed provision cleaned up) status says so.
   */
  async tornDown(object: T): Result {
    this.pending.delete(objectKey(object.metadata));
    const orphanMitigation = object.status?.orphanMitigationInProgress === true;
    if (!orphanMitigation && object.metadata.deletionTimestamp) {
      this.ctx.events.record(object, 'Normal', this.kind.tornDown.reason, this.kind.tornDown.message);
      return this.removeFinalizer(object);
    }
    const reason = orphanMitigation ? Reason.OrphanMitigationSuccessful : this.kind.tornDown.reason;
    const message = orphanMitigation ? 'Orphan mitigation was completed successfully' : this.kind.tornDown.message;
    const written = await this.kind.writeStatus(object, (s) => {
      putCondition(s, ConditionType.Ready, 'False', reason, message);
      this.kind.setTeardownStatus(s, 'Succeeded');
      delete s.orphanMitigationInProgress;
      delete s.asyncOpInProgress;
      delete s.lastOperation;
      delete s.externalProperties;
      this.kind.markTornDown(s, orphanMitigation);
    });
    if (written.metadata.deletionTimestamp) return { requeueAfterMs: 0 };
    return this.kind.afterTornDown(written);
  }

  /**
   * Writes why the object cannot be acted on as its Ready condition; a terminal reason is also
   * Failed=True for this generation. Retried with backoff unless terminal or `retry` is false.
   */
  async block(object: T, blocked: Blocked, retry = true): Result {
    await this.kind.writeStatus(object, (s) => {
      putCondition(s, ConditionType.Ready, 'False', blocked.reason, blocked.message);
      if (!blocked.terminal) return;
      putCondition(s, ConditionType.Failed, 'True', blocked.reason, blocked.message);
      s.observedGeneration = object.metadata.generation;
      delete s.currentOperation;
      if (this.kind.blockedForGoodClearsProgress) {
        delete s.inProgressProperties;
        delete s.operationStartTime;
      }
    });
    if (blocked.terminal || !retry) return;
    return { backoff: true };
  }

  /** Removes our finalizer (the object then goes) and forgets its poll. */
  removeFinalizer(object: T): Promise<void> {
    this.pending.delete(objectKey(object.metadata));
    return removeFinalizer(this.ctx, this.kind.resource, object);
  }
}

/** The body of a 200 to last_operation; undefined for any other outcome. */
function lastOperationAnswer(outcome: OsbOutcome): LastOperationResponse | undefined {
  if (outcome.kind !== 'response' || outcome.status !== 200) return undefined;
  return asObject(outcome.body) as LastOperationResponse | undefined;
}
