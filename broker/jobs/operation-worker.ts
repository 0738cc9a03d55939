import { UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type pg from 'pg';
import type { Catalog, CatalogPlan } from '../catalog/catalog.js';
import { getBinding } from '../db/bindings.js';
import { getInstance, type InstanceRow } from '../db/instances.js';
import { describeOperation, getOperation, type OperationRow, type OperationType } from '../db/operations.js';
import type { Logger } from '../../runtime/logger.js';
import type { BrokerMetrics } from '../metrics.js';
import {
  OperationEndedError,
  PermanentOfferingError,
  type InstanceRequest,
  type OperationContext,
} from '../offerings/offering.js';
import type { StateCipher } from '../crypto/state-cipher.js';
import { errorReason, failure, recordOutcome, requestedState, type Outcome } from './outcome.js';
import { OPERATIONS_QUEUE, type OperationJobData } from './operation-queue.js';

export interface OperationWorkerOptions {
  pool: pg.Pool;
  cipher: StateCipher;
  catalog: Catalog;
  connection: ConnectionOptions;
  prefix: string;
  logger: Logger;
  metrics: BrokerMetrics;
  concurrency?: number;
}

/** Carries out operations: calls the offering, then records the outcome in Postgres. */
export class OperationWorker {
  private readonly worker: Worker<OperationJobData, void, OperationType>;

  constructor(private readonly options: OperationWorkerOptions) {
    this.worker = new Worker(OPERATIONS_QUEUE, (job) => this.process(job), {
      connection: options.connection,
      prefix: options.prefix,
      concurrency: options.concurrency ?? 8,
      autorun: true,
    });
    this.worker.on('error', (error) => options.logger.error({ err: error }, 'operation worker error'));
    // A job can fail for good outside `process` (it stalled too often, or recording the
    // outcome failed on the last attempt): its operation must still end.
    this.worker.on('failed', (job, error) => {
      if (job) void this.failedForGood(job, error);
    });
  }

  private async failedForGood(job: Job<OperationJobData, void, OperationType>, error: Error): Promise<void> {
    try {
      if ((await job.getState()) !== 'failed') return; // it will be tried again
      const op = await getOperation(this.options.pool, this.options.cipher, job.data.operationId);
      if (!op || op.state !== 'in progress') return;
      if (await recordOutcome(this.options.pool, this.options.cipher, this.options.metrics, op, failure(op, error))) {
        this.options.logger.error({ operationId: op.id, operationType: op.type, err: error }, 'operation failed');
      }
    } catch (failure) {
      // The sweeper re-adds the job once the operation has been idle for a while.
      this.options.logger.warn({ err: failure, operationId: job.data.operationId }, 'could not record a failed job');
    }
  }

  async waitUntilReady(): Promise<void> {
    await this.worker.waitUntilReady();
  }

  async close(): Promise<void> {
    await this.worker.close();
  }

  private async process(job: Job<OperationJobData, void, OperationType>): Promise<void> {
    const { pool, logger } = this.options;
    const op = await getOperation(pool, this.options.cipher, job.data.operationId);
    if (!op || op.state !== 'in progress') return; // already ended: a repeated job is harmless
    const log = logger.child({
      operationId: op.id,
      ...(op.request_identity ? { requestId: op.request_identity } : {}),
      operationType: op.type,
      instanceId: op.instance_id,
      ...(op.binding_id ? { bindingId: op.binding_id } : {}),
      attempt: job.attemptsMade + 1,
    });
    const attempts = job.opts.attempts ?? 1;
    const lastAttempt = job.attemptsMade + 1 >= attempts;
    log.debug({ jobId: job.id, attempts }, 'operation job received');
    log.info('operation started');
    let outcome: Outcome;
    try {
      outcome = await this.execute(op);
    } catch (error) {
      if (error instanceof OperationEndedError) {
        log.warn('the operation ended while its job ran (it timed out); the job stopped');
        return;
      }
      if (!(error instanceof PermanentOfferingError) && !lastAttempt) {
        log.warn({ err: error }, 'operation attempt failed; retrying');
        const reason = errorReason(error);
        await describeOperation(
          pool,
          op.id,
          `${op.type} attempt ${job.attemptsMade + 1} of ${attempts} failed (${reason}); retrying`,
        );
        throw error;
      }
      log.error({ err: error }, 'operation failed');
      outcome = failure(op, error);
    }
    if (await recordOutcome(pool, this.options.cipher, this.options.metrics, op, outcome)) {
      log.info({ state: outcome.state, seconds: (Date.now() - op.created_at.getTime()) / 1000 }, 'operation finished');
    }
    // A failure is recorded in Postgres; tell BullMQ not to try again.
    if (outcome.state === 'failed') throw new UnrecoverableError(outcome.description);
  }

  /** Carries out one operation with its offering; the outcome is recorded by the caller. */
  private async execute(op: OperationRow): Promise<Outcome> {
    const { pool } = this.options;
    const instance = await getInstance(pool, this.options.cipher, op.instance_id);
    if (!instance) throw new PermanentOfferingError(`service instance ${op.instance_id} no longer exists`);
    const current = this.plan(instance, instance.plan_id);
    const request: InstanceRequest = {
      instanceId: instance.id,
      planName: current.plan.name,
      // The settings the instance was built with (maintenance_info: they change on upgrade).
      planSettings: instance.plan_settings ?? current.settings,
      parameters: instance.parameters,
      context: instance.context,
      ...(instance.maintenance_info ? { maintenanceInfo: instance.maintenance_info } : {}),
    };
    const context: OperationContext = {
      reportProgress: async (description) => {
        if (!(await describeOperation(pool, op.id, description))) {
          throw new OperationEndedError(`the ${op.type} operation ended while its job was still running`);
        }
      },
    };
    switch (op.type) {
      case 'provision': {
        const result = await current.offering.provision(request, context);
        const dashboard = result.dashboardUrl ? { dashboardUrl: result.dashboardUrl } : {};
        return { state: 'succeeded', description: 'Provisioned.', ...dashboard };
      }
      case 'update':
        return this.update(op, instance, request, context);
      case 'deprovision':
        await current.offering.deprovision(request, context);
        return { state: 'succeeded', description: 'Deprovisioned.' };
      case 'bind':
      case 'unbind':
        return this.bindOrUnbind(op, current, request, context);
    }
  }

  /** An update: the target plan's offering brings the instance to the requested state. */
  private async update(
    op: OperationRow,
    instance: InstanceRow,
    request: InstanceRequest,
    context: OperationContext,
  ): Promise<Outcome> {
    const wanted = requestedState(instance, op.request);
    const target = this.plan(instance, wanted.plan_id);
    const maintenanceInfo = wanted.maintenance_info;
    await target.offering.update(
      {
        ...request,
        planName: target.plan.name,
        planSettings: op.request.plan_settings ?? target.settings,
        parameters: wanted.parameters,
        context: wanted.context,
        ...(maintenanceInfo ? { maintenanceInfo } : {}),
        previous: request,
      },
      context,
    );
    const upgradedTo = maintenanceInfo?.version;
    const upgraded = upgradedTo !== undefined && upgradedTo !== instance.maintenance_info?.version;
    return {
      state: 'succeeded',
      description: upgraded
        ? `Updated; upgraded from maintenance_info ${instance.maintenance_info?.version ?? '(none)'} to ${upgradedTo}.`
        : 'Updated.',
    };
  }

  /** A bind (credentials, with expiry metadata when the plan has a lifetime) or an unbind. */
  private async bindOrUnbind(
    op: OperationRow,
    plan: CatalogPlan,
    instanceRequest: InstanceRequest,
    context: OperationContext,
  ): Promise<Outcome> {
    const binding = await getBinding(this.options.pool, this.options.cipher, op.binding_id ?? '');
    if (!binding) throw new PermanentOfferingError(`binding ${op.binding_id} no longer exists`);
    const appGuid = binding.bind_resource?.app_guid ?? binding.app_guid;
    const bindingRequest = {
      instance: instanceRequest,
      bindingId: binding.id,
      parameters: binding.parameters,
      ...(appGuid ? { appGuid } : {}),
    };
    if (op.type === 'unbind') {
      await plan.offering.unbind(bindingRequest, context);
      return { state: 'succeeded', description: 'Unbound.' };
    }
    // spec (binding metadata): expires_at, and renew_before to leave time for a rotation.
    const lifetime = plan.credentialLifetime;
    const expiresAt = lifetime ? new Date(Date.now() + lifetime.seconds * 1000) : undefined;
    const result = await plan.offering.bind({ ...bindingRequest, ...(expiresAt ? { expiresAt } : {}) }, context);
    const metadata = {
      ...result.metadata,
      ...(expiresAt && lifetime
        ? {
            expires_at: expiresAt.toISOString(),
            renew_before: new Date(expiresAt.getTime() - lifetime.renewBeforeSeconds * 1000).toISOString(),
          }
        : {}),
    };
    return {
      state: 'succeeded',
      description: 'Bound.',
      bindResponse: {
        credentials: result.credentials,
        ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
        ...(result.endpoints ? { endpoints: result.endpoints } : {}),
      },
    };
  }

  private plan(instance: InstanceRow, planId: string): CatalogPlan {
    const plan = this.options.catalog.plan(instance.service_id, planId);
    if (!plan)
      throw new PermanentOfferingError(`plan ${planId} of service ${instance.service_id} is no longer in the catalog`);
    return plan;
  }
}
