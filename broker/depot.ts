import http from 'node:http';
import https from 'node:https';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { loadCatalogFile } from './catalog/catalog-file.js';
import { CatalogError, type Catalog } from './catalog/catalog.js';
import { BrokerCredentials } from './auth/broker-credentials.js';
import { readCredentialsFile } from './auth/credentials-file.js';
import { serverAddress, type BrokerConfig } from './config.js';
import { plansInUse } from './db/instances.js';
import { operationsInProgress } from './db/operations.js';
import { checkKeys, KeyRegistryError, sealExistingRows } from './crypto/key-registry.js';
import { encryptionKeys } from './crypto/encryption-keys.js';
import { StateCipher } from './crypto/state-cipher.js';
import { migrate } from './db/migrate.js';
import { createPool, databaseName, ensureDatabase } from './db/pool.js';
import { DepotBroker } from './depot-broker.js';
import { createApp, createMetricsApp, createProbeApp, DependencyDown } from './http/app.js';
import { MAX_HEADER_BYTES, answerClientError } from './http/client-error.js';
import { readTlsCertificate } from './http/tls-certificate.js';
import { OperationQueue } from './jobs/operation-queue.js';
import { OperationWorker } from './jobs/operation-worker.js';
import { errorReason } from './jobs/outcome.js';
import { DriftChecker } from './jobs/drift-checker.js';
import { Sweeper } from './jobs/sweeper.js';
import type { Logger } from '../runtime/logger.js';
import { BrokerMetrics } from './metrics.js';
import type { Offering } from './offerings/offering.js';
import { createOfferings } from './offerings/registry.js';
import { redisOptions } from './redis.js';
import type { ServiceBroker } from './service-broker.js';
import { withTimeout } from '../runtime/timeout.js';

/** Which parts run in this process: `npm start` runs both, start:api and start:worker one each. */
export type Role = 'all' | 'api' | 'worker';

/** A dependency that could not be reached at start; the message says which and how to fix it. */
export class StartupError extends Error {
  override name = 'StartupError';
}

export interface Depot {
  config: BrokerConfig;
  catalog: Catalog;
  pool: pg.Pool;
  cipher: StateCipher;
  queue: OperationQueue;
  metrics: BrokerMetrics;
  broker: DepotBroker;
  /** The pairs the OSB API accepts, replaced by reload(). */
  credentials: BrokerCredentials;
  /**
   * The server on PORT, not listening yet: the OSB API and the probes, or for a worker only the
   * probes. HTTPS only when TLS_CERT_FILE and TLS_KEY_FILE are set.
   */
  server: http.Server | https.Server;
  /** The metrics server (GET /metrics), not listening yet: METRICS_PORT on METRICS_HOST. */
  metricsServer: http.Server;
  worker: OperationWorker | undefined;
  sweeper: Sweeper | undefined;
  /** Drift repair (workers, when DRIFT_CHECK_SECONDS is not 0); `checkDue(0)` checks every instance now. */
  driftChecker: DriftChecker | undefined;
  /**
   * SIGHUP: reads BROKER_CREDENTIALS_FILE and the TLS certificate again. A file that cannot be used
   * keeps what is in use, with an error in the log; the result names the variables of each kind.
   */
  reload(): ReloadResult;
  close(): Promise<void>;
}

export interface ReloadResult {
  reloaded: string[];
  failed: string[];
}

/**
 * What TEST_OFFERING=enabled adds (testing/, loaded only then): an offering, the catalog file of
 * its services, and a decorator of the broker that answers its plans' http faults.
 */
export interface TestExtension {
  offering: Offering;
  catalogFile: string;
  wrap(broker: ServiceBroker, parts: { catalog: Catalog; pool: pg.Pool; cipher: StateCipher }): ServiceBroker;
}

export interface StartOptions {
  role: Role;
  logger: Logger;
  /** Where a notice for the operator goes (the key file in use): stderr by default, never the log. */
  notice?: (text: string) => void;
  sweeperIntervalMs?: number;
}

/** What TEST_OFFERING=enabled adds; testing/ is loaded only then (also by the admin CLI). */
export async function testExtension(config: Pick<BrokerConfig, 'testOffering'>): Promise<TestExtension | undefined> {
  return config.testOffering ? (await import('../testing/index.js')).createTestExtension() : undefined;
}

/** Connects to Postgres and Redis (failing fast with a useful message), migrates, and wires the parts. */
export async function createDepot(config: BrokerConfig, options: StartOptions): Promise<Depot> {
  const { logger } = options;
  // TEST_OFFERING=enabled: the failure-injecting test offering and its services join the catalog.
  const testing = await testExtension(config);
  const cipher = new StateCipher(
    await encryptionKeys(config, options.notice ?? ((text) => process.stderr.write(text))),
  );
  const pool = await openState(config, cipher, logger);
  const { catalog, offerings, queue } = await startServing(config, pool, testing, logger);

  const metrics = new BrokerMetrics();
  const ready = readiness(pool, queue);
  metrics.watchState({
    operationsInProgress: () => operationsInProgress(pool),
    jobCounts: () => queue.jobCounts(),
    ready,
  });
  const broker = new DepotBroker({
    pool,
    cipher,
    catalog,
    queue,
    logger,
    metrics,
    retryAfterSeconds: config.retryAfterSeconds,
    syncOperationTimeoutMs: config.syncOperationTimeoutMs,
  });
  // The test plans' http faults are answered before the real broker sees the request.
  const api: ServiceBroker = testing ? testing.wrap(broker, { catalog, pool, cipher }) : broker;
  const credentials = new BrokerCredentials(config.brokerCredentials);
  const parts = { broker: api, catalog, credentials, logger, metrics, ready };
  const server = createHttpServer(config, options.role, parts);
  const metricsServer = http.createServer(createMetricsApp(metrics));
  const { worker, sweeper, driftChecker } =
    options.role === 'api'
      ? {}
      : startWorkers(config, { pool, cipher }, catalog, queue, logger, metrics, options.sweeperIntervalMs);

  return {
    config,
    catalog,
    pool,
    cipher,
    queue,
    metrics,
    broker,
    credentials,
    server,
    metricsServer,
    worker,
    sweeper,
    driftChecker,
    reload: () => reload(config, credentials, server, logger),
    async close() {
      for (const listener of [server, metricsServer]) {
        if (listener.listening) await new Promise<void>((resolve) => listener.close(() => resolve()));
      }
      await sweeper?.stop();
      await driftChecker?.stop();
      await worker?.close();
      await queue.close();
      await Promise.all(offerings.map((o) => o.close()));
      await pool.end();
    },
  };
}

/** Depot's state database: reached (created if missing), pooled and migrated; then Redis reached. */
async function openState(config: BrokerConfig, cipher: StateCipher, logger: Logger): Promise<pg.Pool> {
  await reachStatePostgres(config.databaseUrl);
  const pool = createPool(config.databaseUrl, 20);
  pool.on('error', (error) => logger.warn({ err: error }, 'idle database connection error'));
  try {
    const applied = await migrate(pool, { steps: { 4: sealExistingRows(cipher) } });
    if (applied.length) {
      logger.info({ migrations: applied, database: databaseName(config.databaseUrl) }, 'applied migrations');
    }
    await checkKeys(pool, cipher).catch((error: unknown) => {
      throw error instanceof KeyRegistryError ? new StartupError(error.message) : error;
    });
    await reachRedis(config.redisUrl);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
  return pool;
}

/**
 * The catalog, the offerings it uses (their servers usable now) and the queue. On a failure the
 * offerings, the queue and the pool are closed again.
 */
async function startServing(
  config: BrokerConfig,
  pool: pg.Pool,
  testing: TestExtension | undefined,
  logger: Logger,
): Promise<{ catalog: Catalog; offerings: Offering[]; queue: OperationQueue }> {
  let available: Offering[] = [];
  let queue: OperationQueue | undefined;
  try {
    available = [...createOfferings(config, logger), ...(testing ? [testing.offering] : [])];
    let catalog = await loadCatalogFile(config.catalogFile, available, testing ? [testing.catalogFile] : []);
    // Only the offerings the catalog uses stay, and their servers must be usable now.
    const inUse = await plansInUse(pool);
    const used = available.filter((o) => catalog.usesOffering(o));
    const unusable = await unusableOfferings(used, catalog, inUse, logger);
    catalog = catalog.without(unusable);
    const offerings = used.filter((o) => !unusable.includes(o));
    await Promise.all(available.filter((o) => !offerings.includes(o)).map((o) => o.close()));
    requirePlansInUse(catalog, inUse);
    queue = new OperationQueue({ connection: redisOptions(config.redisUrl), prefix: config.queuePrefix });
    await queue.waitUntilReady();
    return { catalog, offerings, queue };
  } catch (error) {
    await queue?.close().catch(() => undefined);
    await Promise.all(available.map((o) => o.close().catch(() => undefined)));
    await pool.end().catch(() => undefined);
    throw error;
  }
}

/**
 * A plan that instances still use must stay in the catalog, or they could never be updated,
 * unbound or deprovisioned again.
 */
function requirePlansInUse(catalog: Catalog, inUse: Array<{ service_id: string; plan_id: string; instances: number }>) {
  const orphaned = inUse.filter((p) => !catalog.plan(p.service_id, p.plan_id));
  if (orphaned.length === 0) return;
  throw new CatalogError(
    `the catalog lacks plans that service instances still use: ${orphaned
      .map((p) => `service ${p.service_id} plan ${p.plan_id} (${p.instances} instance(s))`)
      .join('; ')}. Keep them in the catalog until those instances are deprovisioned.`,
  );
}

/** Resolves when Postgres and Redis answer; rejects naming the one that does not. */
function readiness(pool: pg.Pool, queue: OperationQueue): () => Promise<void> {
  return async () => {
    await pool.query('select 1').catch((error: unknown) => Promise.reject(new DependencyDown('PostgreSQL', error)));
    await withTimeout(queue.ping(), 2000, 'Redis did not answer').catch((error: unknown) =>
      Promise.reject(new DependencyDown('Redis', error)),
    );
  };
}

interface ServedParts {
  broker: ServiceBroker;
  catalog: Catalog;
  credentials: BrokerCredentials;
  logger: Logger;
  metrics: BrokerMetrics;
  ready: () => Promise<void>;
}

/**
 * The server on PORT, not listening yet: the OSB API, or for a worker only /healthz and /readyz.
 * With a TLS certificate it is HTTPS and nothing else (no plain HTTP listener).
 */
function createHttpServer(config: BrokerConfig, role: Role, parts: ServedParts): http.Server | https.Server {
  const { retryAfterSeconds } = config;
  const app =
    role === 'worker'
      ? createProbeApp({ logger: parts.logger, ready: parts.ready, retryAfterSeconds })
      : createApp({ ...parts, retryAfterSeconds });
  // Long ids (up to the broker's limit, percent-encoded) must reach the router to get a JSON 400.
  const options = { maxHeaderSize: MAX_HEADER_BYTES };
  const server = config.tls
    ? https.createServer({ ...options, cert: config.tls.cert, key: config.tls.key }, app)
    : http.createServer(options, app);
  server.on('clientError', answerClientError);
  server.keepAliveTimeout = 65_000;
  return server;
}

/** Depot.reload(): each file read again; one that cannot be used leaves the one in use in place. */
function reload(
  config: BrokerConfig,
  credentials: BrokerCredentials,
  server: http.Server | https.Server,
  logger: Logger,
): ReloadResult {
  const result: ReloadResult = { reloaded: [], failed: [] };
  const file = config.brokerCredentialsFile;
  if (file) {
    try {
      credentials.replace(readCredentialsFile(file));
      result.reloaded.push('BROKER_CREDENTIALS_FILE');
      logger.info({ file, entries: credentials.size }, 'reloaded BROKER_CREDENTIALS_FILE');
    } catch (error) {
      result.failed.push('BROKER_CREDENTIALS_FILE');
      const line = (error as { line?: number }).line;
      logger.error(
        { file, ...(line ? { line } : {}), reason: (error as Error).message },
        'BROKER_CREDENTIALS_FILE not reloaded: the credentials in use stay',
      );
    }
  }
  if (config.tls && server instanceof https.Server) {
    const { certFile, keyFile } = config.tls;
    try {
      const certificate = readTlsCertificate(certFile, keyFile);
      // New connections get the new certificate; open ones keep theirs.
      server.setSecureContext({ cert: certificate.cert, key: certificate.key });
      result.reloaded.push('TLS_CERT_FILE');
      logger.info(
        { certFile, fingerprint256: certificate.fingerprint256, validTo: certificate.validTo },
        'reloaded TLS_CERT_FILE and TLS_KEY_FILE',
      );
    } catch (error) {
      result.failed.push('TLS_CERT_FILE');
      logger.error(
        { certFile, keyFile, reason: (error as Error).message },
        'TLS certificate not reloaded: the certificate in use stays',
      );
    }
  }
  return result;
}

/** The operation workers and the sweeper (roles `all` and `worker`). */
function startWorkers(
  config: BrokerConfig,
  { pool, cipher }: { pool: pg.Pool; cipher: StateCipher },
  catalog: Catalog,
  queue: OperationQueue,
  logger: Logger,
  metrics: BrokerMetrics,
  sweeperIntervalMs: number | undefined,
): { worker: OperationWorker; sweeper: Sweeper; driftChecker: DriftChecker | undefined } {
  const worker = new OperationWorker({
    pool,
    cipher,
    catalog,
    connection: redisOptions(config.redisUrl),
    prefix: config.queuePrefix,
    logger,
    metrics,
    concurrency: config.workerConcurrency,
  });
  const sweeper = new Sweeper({
    pool,
    cipher,
    queue,
    logger,
    metrics,
    operationTimeoutSeconds: config.operationTimeoutSeconds,
    deletedRetentionHours: config.deletedRetentionHours,
    ...(sweeperIntervalMs ? { intervalMs: sweeperIntervalMs } : {}),
  });
  sweeper.start();
  const driftChecker =
    config.driftCheckSeconds > 0
      ? new DriftChecker({ pool, cipher, catalog, logger, metrics, periodSeconds: config.driftCheckSeconds })
      : undefined;
  driftChecker?.start();
  return { worker, sweeper, driftChecker };
}

/** Depot's own database (DATABASE_URL), created if missing. */
async function reachStatePostgres(url: string): Promise<void> {
  try {
    await ensureDatabase(url);
  } catch (error) {
    throw new StartupError(
      `Cannot reach PostgreSQL at ${serverAddress(url, 5432)} (DATABASE_URL): ${reason(error)}. ` +
        'Start it (for example `docker compose up -d postgres`, or `pg_ctlcluster 15 main start` on Debian) ' +
        'or point DATABASE_URL at a running server.',
    );
  }
}

/**
 * The offerings whose server cannot be used now. A server the operator named, or one that
 * instances already live on, stops Depot; a defaulted one (a newcomer's `npm start` on a stock
 * Redis) only leaves the offering's services out of the catalog, with a line that says so.
 */
async function unusableOfferings(
  offerings: Offering[],
  catalog: Catalog,
  inUse: Array<{ service_id: string; plan_id: string }>,
  logger: Logger,
): Promise<Offering[]> {
  const unusable: Offering[] = [];
  for (const offering of offerings) {
    try {
      await withTimeout(offering.ping(), 10_000, 'no answer within 10 seconds');
      continue;
    } catch (error) {
      const problem = `Cannot use ${offering.server}, which the ${offering.name} offering uses: ${reason(error)}`;
      const used = inUse.some((p) => catalog.plan(p.service_id, p.plan_id)?.offering === offering);
      if (offering.serverConfigured || used) {
        throw new StartupError(`${problem}. Start or fix it, or point that variable at a server that is.`);
      }
      const services = catalog.serviceNamesOf(offering).join(', ');
      logger.warn(
        { offering: offering.name, services },
        `Not offering ${services}. ${problem}. To offer it, set the variable named there to a server it can use ` +
          '(Depot then refuses to start without that server).',
      );
      unusable.push(offering);
    }
  }
  return unusable;
}

async function reachRedis(url: string): Promise<void> {
  const client = new Redis({
    ...redisOptions(url),
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let cause: Error | undefined;
  client.on('error', (error: Error) => {
    cause ??= error; // the first error says why (ECONNREFUSED, ENOTFOUND, WRONGPASS, …)
  });
  try {
    await withTimeout(
      client.connect().then(() => client.ping()),
      5000,
      'no answer within 5 seconds',
    );
  } catch (error) {
    throw new StartupError(
      `Cannot reach Redis at ${serverAddress(url, 6379)} (REDIS_URL): ${reason(cause ?? error)}. ` +
        'Start it (for example `docker compose up -d redis`, or `redis-server --daemonize yes`) ' +
        'or point REDIS_URL at a running server.',
    );
  } finally {
    client.disconnect();
  }
}

/** An error's message without a trailing full stop, to go inside a sentence. */
function reason(error: unknown): string {
  return errorReason(error).replace(/\.+$/, '');
}
