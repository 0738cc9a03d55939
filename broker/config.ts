import { randomBytes } from 'node:crypto';
import { readCredentialsFile, type BrokerCredential } from './auth/credentials-file.js';
import { readTlsCertificate, type TlsCertificate } from './http/tls-certificate.js';
import { defaultKeyFile, parseEncryptionKeys } from './crypto/encryption-keys.js';
import type { EncryptionKey } from './crypto/state-cipher.js';
import { ConfigError, host, integer, logLevel, optionalInteger, switchedOn, url, type Env } from '../runtime/config.js';

/** The broker's configuration, read once from the environment at start and checked. */
export interface BrokerConfig {
  port: number;
  /** GET /metrics listens here, apart from the OSB port: METRICS_PORT on METRICS_HOST. */
  metricsPort: number;
  metricsHost: string;
  databaseUrl: string;
  redisUrl: string;
  /** Server on which the `postgresql` offering creates databases and roles. */
  postgresServiceUrl: string;
  /** POSTGRES_SERVICE_URL was set: an unusable server then stops Depot instead of leaving `postgresql` out. */
  postgresServiceConfigured: boolean;
  /** Host and port handed out in credentials; default: those of postgresServiceUrl. */
  postgresServicePublicHost: string | undefined;
  postgresServicePublicPort: number | undefined;
  /** Server on which the `redis` offering creates ACL users and key prefixes (database 0). */
  redisServiceUrl: string;
  /** REDIS_SERVICE_URL was set: an unusable server then stops Depot instead of leaving `redis` out. */
  redisServiceConfigured: boolean;
  /** Host and port handed out in Redis credentials; default: those of redisServiceUrl. */
  redisServicePublicHost: string | undefined;
  redisServicePublicPort: number | undefined;
  /** Server on which the `mysql` offering creates databases and users (MariaDB ≥ 10.6 or MySQL ≥ 8.0). */
  mysqlServiceUrl: string;
  /** MYSQL_SERVICE_URL was set: an unusable server then stops Depot instead of leaving `mysql` out. */
  mysqlServiceConfigured: boolean;
  /** Host and port handed out in MySQL credentials; default: those of mysqlServiceUrl. */
  mysqlServicePublicHost: string | undefined;
  mysqlServicePublicPort: number | undefined;
  /** Management HTTP API through which the `rabbitmq` offering creates virtual hosts and users. */
  rabbitmqServiceUrl: string;
  /** RABBITMQ_SERVICE_URL was set: an unusable server then stops Depot instead of leaving `rabbitmq` out. */
  rabbitmqServiceConfigured: boolean;
  /** AMQP host and port handed out in RabbitMQ credentials; default: rabbitmqServiceUrl's host, port 5672. */
  rabbitmqServicePublicHost: string | undefined;
  rabbitmqServicePublicPort: number | undefined;
  brokerUsername: string;
  brokerPassword: string;
  /** True when no credentials were configured and a password was generated for this process. */
  generatedPassword: boolean;
  /** BROKER_CREDENTIALS_FILE (read again on SIGHUP), or undefined for the single pair above. */
  brokerCredentialsFile: string | undefined;
  /** The pairs the OSB API accepts: the file's, or BROKER_USERNAME/BROKER_PASSWORD (or the generated one). */
  brokerCredentials: BrokerCredential[];
  /** TLS_CERT_FILE and TLS_KEY_FILE: PORT then serves HTTPS only (read again on SIGHUP). */
  tls: TlsCertificate | undefined;
  catalogFile: string | undefined;
  logLevel: string;
  workerConcurrency: number;
  /** Seconds a platform is asked to wait between last_operation polls (Retry-After). */
  retryAfterSeconds: number;
  /** How long a synchronous bind/unbind (no accepts_incomplete) waits for its job. */
  syncOperationTimeoutMs: number;
  /** An operation still "in progress" after this long is failed by the sweeper. */
  operationTimeoutSeconds: number;
  /** How long deleted instances and bindings keep answering last_operation with "succeeded". */
  deletedRetentionHours: number;
  /** Prefix of the BullMQ keys in Redis, so several Depots (or test runs) can share a server. */
  queuePrefix: string;
  /** ENCRYPTION_KEYS: the first seals the state at rest, all open it; undefined: the key file's. */
  encryptionKeys: EncryptionKey[] | undefined;
  /** ENCRYPTION_KEY_FILE: the development key, made on the first start without ENCRYPTION_KEYS. */
  encryptionKeyFile: string;
  /** DRIFT_CHECK_SECONDS: each instance's objects are checked this often; 0: never. */
  driftCheckSeconds: number;
  /** TEST_OFFERING=enabled: the failure-injecting `test` offering and its services (never in production). */
  testOffering: boolean;
}

/** DATABASE_URL pointed at another database on the same server (used for the maintenance database). */
export function withDatabase(connectionUrl: string, database: string): string {
  const parsed = new URL(connectionUrl);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

/** Loads and checks the configuration; throws ConfigError naming the variable at fault. */
export function loadConfig(env: Env = process.env): BrokerConfig {
  const databaseUrl = url(env, 'DATABASE_URL', 'postgresql://postgres:postgres@127.0.0.1:5432/depot', [
    'postgres:',
    'postgresql:',
  ]);
  const redisUrl = url(env, 'REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']);
  const postgresServiceUrl = url(env, 'POSTGRES_SERVICE_URL', withDatabase(databaseUrl, 'postgres'), [
    'postgres:',
    'postgresql:',
  ]);

  const redisServiceUrl = url(env, 'REDIS_SERVICE_URL', redisServer(redisUrl), ['redis:', 'rediss:']);
  // Bindings may not SELECT (keys elsewhere would escape deprovisioning): instances live in 0.
  if (!/^\/?0?$/.test(new URL(redisServiceUrl).pathname)) {
    throw new ConfigError('REDIS_SERVICE_URL must name database 0 (or none): bindings cannot SELECT another database');
  }

  const rabbitmqServiceUrl = url(env, 'RABBITMQ_SERVICE_URL', 'http://guest:guest@127.0.0.1:15672', [
    'http:',
    'https:',
  ]);

  const username = env.BROKER_USERNAME ?? '';
  const password = env.BROKER_PASSWORD ?? '';
  if (username !== '' && password === '') throw new ConfigError('BROKER_PASSWORD must be set when BROKER_USERNAME is');
  if (username === '' && password !== '') throw new ConfigError('BROKER_USERNAME must be set when BROKER_PASSWORD is');
  if (username.includes(':')) throw new ConfigError('BROKER_USERNAME must not contain ":" (HTTP Basic auth)');
  const credentialsFile = env.BROKER_CREDENTIALS_FILE || undefined;
  if (credentialsFile && username !== '') {
    throw new ConfigError(
      'BROKER_CREDENTIALS_FILE and BROKER_USERNAME/BROKER_PASSWORD cannot both be set: put that pair in the file',
    );
  }
  const generatedPassword = username === '' && !credentialsFile;
  const brokerUsername = generatedPassword ? 'depot' : username;
  const brokerPassword = generatedPassword ? randomBytes(18).toString('base64url') : password;

  return {
    port: integer(env, 'PORT', 8080, 0, 65535),
    metricsPort: integer(env, 'METRICS_PORT', 9464, 0, 65535),
    metricsHost: host(env, 'METRICS_HOST', '127.0.0.1'),
    databaseUrl,
    redisUrl,
    postgresServiceUrl,
    postgresServiceConfigured: Boolean(env.POSTGRES_SERVICE_URL),
    postgresServicePublicHost: env.POSTGRES_SERVICE_PUBLIC_HOST || undefined,
    postgresServicePublicPort: optionalInteger(env, 'POSTGRES_SERVICE_PUBLIC_PORT', 1, 65535),
    redisServiceUrl,
    redisServiceConfigured: Boolean(env.REDIS_SERVICE_URL),
    redisServicePublicHost: env.REDIS_SERVICE_PUBLIC_HOST || undefined,
    redisServicePublicPort: optionalInteger(env, 'REDIS_SERVICE_PUBLIC_PORT', 1, 65535),
    mysqlServiceUrl: url(env, 'MYSQL_SERVICE_URL', 'mysql://root@127.0.0.1:3306', ['mysql:']),
    mysqlServiceConfigured: Boolean(env.MYSQL_SERVICE_URL),
    mysqlServicePublicHost: env.MYSQL_SERVICE_PUBLIC_HOST || undefined,
    mysqlServicePublicPort: optionalInteger(env, 'MYSQL_SERVICE_PUBLIC_PORT', 1, 65535),
    rabbitmqServiceUrl,
    rabbitmqServiceConfigured: Boolean(env.RABBITMQ_SERVICE_URL),
    rabbitmqServicePublicHost: env.RABBITMQ_SERVICE_PUBLIC_HOST || undefined,
    rabbitmqServicePublicPort: optionalInteger(env, 'RABBITMQ_SERVICE_PUBLIC_PORT', 1, 65535),
    brokerUsername,
    brokerPassword,
    generatedPassword,
    brokerCredentialsFile: credentialsFile,
    brokerCredentials: credentialsFile
      ? readCredentialsFile(credentialsFile)
      : [{ username: brokerUsername, kind: 'plain', password: brokerPassword }],
    tls: tlsCertificate(env),
    catalogFile: env.CATALOG_FILE || undefined,
    logLevel: logLevel(env),
    workerConcurrency: integer(env, 'WORKER_CONCURRENCY', 8, 1, 1000),
    retryAfterSeconds: integer(env, 'RETRY_AFTER_SECONDS', 2, 1, 86400),
    syncOperationTimeoutMs: integer(env, 'SYNC_OPERATION_TIMEOUT_SECONDS', 50, 1, 3600) * 1000,
    operationTimeoutSeconds: integer(env, 'OPERATION_TIMEOUT_SECONDS', 3600, 10, 7 * 86400),
    deletedRetentionHours: integer(env, 'DELETED_RETENTION_HOURS', 168, 1, 24 * 365),
    queuePrefix: env.QUEUE_PREFIX || 'depot',
    encryptionKeys: env.ENCRYPTION_KEYS ? parseEncryptionKeys(env.ENCRYPTION_KEYS, 'ENCRYPTION_KEYS') : undefined,
    encryptionKeyFile: env.ENCRYPTION_KEY_FILE || defaultKeyFile(env),
    driftCheckSeconds: integer(env, 'DRIFT_CHECK_SECONDS', 300, 0, 7 * 86400),
    testOffering: switchedOn(env, 'TEST_OFFERING', false),
  };
}

/** TLS_CERT_FILE and TLS_KEY_FILE, both or neither. */
function tlsCertificate(env: Env): TlsCertificate | undefined {
  const [certFile, keyFile] = [env.TLS_CERT_FILE || undefined, env.TLS_KEY_FILE || undefined];
  if (certFile && !keyFile) throw new ConfigError('TLS_KEY_FILE must be set when TLS_CERT_FILE is');
  if (keyFile && !certFile) throw new ConfigError('TLS_CERT_FILE must be set when TLS_KEY_FILE is');
  return certFile && keyFile ? readTlsCertificate(certFile, keyFile) : undefined;
}

/** REDIS_URL's server: the same address and credentials, database 0. */
function redisServer(redisUrl: string): string {
  const parsed = new URL(redisUrl);
  parsed.pathname = '';
  return parsed.toString();
}

/** host:port of a connection URL, for messages that say which server could not be reached. */
export function serverAddress(connectionUrl: string, defaultPort: number): string {
  const parsed = new URL(connectionUrl);
  return `${parsed.hostname || '127.0.0.1'}:${parsed.port || defaultPort}`;
}
