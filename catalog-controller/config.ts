import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { ConfigError, host, integer, logLevel, switchedOn, type Env } from '../runtime/config.js';
import { DEFAULT_KUBE_LIMITS } from './kube/kube-client.js';
import { DEFAULT_OSB_MAX_RESPONSE_BYTES } from './osb-client/osb-client.js';

/** The controller's configuration, read once at start (docs/configuration.md). */
export interface ControllerConfig {
  /** /healthz and /readyz. */
  port: number;
  /** GET /metrics listens here, apart from the probes: METRICS_PORT on METRICS_HOST. */
  metricsPort: number;
  metricsHost: string;
  logLevel: string;
  /** Namespace of the leader-election Lease. */
  namespace: string;
  /** This replica's name in the Lease. */
  identity: string;
  leaderElection: boolean;
  leaseName: string;
  leaseDurationSeconds: number;
  leaseRetryPeriodMs: number;
  /** Keys handled at once per kind. */
  concurrentSyncs: number;
  /** Per-key retry backoff: first delay, doubled per failure, capped. */
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  /** First last_operation poll after a 202; then doubling, capped (a broker's Retry-After wins). */
  pollInitialDelayMs: number;
  pollMaxDelayMs: number;
  /** Every object is looked at again this often. */
  resyncMs: number;
  /** Catalog relist period of brokers with relistBehavior Duration and no relistDuration. */
  brokerRelistIntervalMs: number;
  /** The shortest relist period a broker's relistDuration may ask for. */
  minRelistIntervalMs: number;
  /** Give up retrying an operation this long after it started (ErrorReconciliationRetryTimeout). */
  reconciliationRetryDurationMs: number;
  /** The whole of one broker call: connect, headers and the whole body. */
  osbRequestTimeoutMs: number;
  /** The largest broker response body read (a catalog may be a few MB). */
  osbMaxResponseBytes: number;
  /** The whole of one Kubernetes API request (a watch: its headers). */
  kubeRequestTimeoutMs: number;
  /** The largest Kubernetes API response body read (a list page, a Secret, a watch event). */
  kubeMaxResponseBytes: number;
  /** organization_guid and context.clusterid; read from ConfigMap default/cluster-info when unset. */
  clusterId: string | undefined;
}

const IN_CLUSTER_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

function defaultNamespace(): string {
  try {
    return readFileSync(IN_CLUSTER_NAMESPACE_FILE, 'utf8').trim() || 'default';
  } catch {
    return 'default';
  }
}

/** Loads and checks the configuration; throws ConfigError naming the variable at fault. */
export function loadControllerConfig(env: Env = process.env): ControllerConfig {
  const leaseDurationSeconds = integer(env, 'LEASE_DURATION_SECONDS', 15, 2, 3600);
  const leaseRetryPeriodMs = integer(env, 'LEASE_RETRY_PERIOD_MS', 2000, 100, 600_000);
  if (leaseRetryPeriodMs >= leaseDurationSeconds * 1000 * 0.66) {
    throw new ConfigError('LEASE_RETRY_PERIOD_MS must be well under LEASE_DURATION_SECONDS (at most two thirds of it)');
  }
  const retryBaseDelayMs = integer(env, 'RETRY_BASE_DELAY_MS', 1000, 1, 3_600_000);
  const retryMaxDelayMs = integer(env, 'RETRY_MAX_DELAY_SECONDS', 1200, 1, 86_400) * 1000;
  if (retryMaxDelayMs < retryBaseDelayMs)
    throw new ConfigError('RETRY_MAX_DELAY_SECONDS must not be below RETRY_BASE_DELAY_MS');
  const clusterId = env.CLUSTER_ID || undefined;
  if (clusterId !== undefined && !/^[A-Za-z0-9._-]{1,253}$/.test(clusterId)) {
    throw new ConfigError('CLUSTER_ID must be 1-253 characters of letters, digits, ".", "_" or "-"');
  }
  return {
    port: integer(env, 'CONTROLLER_PORT', 8081, 0, 65535),
    // 9465 by default, so that a broker (9464) and a controller on one machine do not collide.
    metricsPort: integer(env, 'METRICS_PORT', 9465, 0, 65535),
    metricsHost: host(env, 'METRICS_HOST', '127.0.0.1'),
    logLevel: logLevel(env),
    namespace: env.CONTROLLER_NAMESPACE || defaultNamespace(),
    identity: env.CONTROLLER_ID || `${hostname()}_${process.pid}`,
    leaderElection: switchedOn(env, 'LEADER_ELECTION', true),
    leaseName: env.LEASE_NAME || 'depot-catalog-controller',
    leaseDurationSeconds,
    leaseRetryPeriodMs,
    concurrentSyncs: integer(env, 'CONCURRENT_SYNCS', 20, 1, 1000),
    retryBaseDelayMs,
    retryMaxDelayMs,
    pollInitialDelayMs: integer(env, 'POLL_INITIAL_DELAY_MS', 200, 1, 3_600_000),
    pollMaxDelayMs: integer(env, 'POLL_MAX_DELAY_SECONDS', 1200, 1, 86_400) * 1000,
    resyncMs: integer(env, 'RESYNC_SECONDS', 300, 1, 86_400) * 1000,
    brokerRelistIntervalMs: integer(env, 'BROKER_RELIST_INTERVAL_SECONDS', 86_400, 1, 31 * 86_400) * 1000,
    minRelistIntervalMs: integer(env, 'MIN_RELIST_INTERVAL_SECONDS', 60, 1, 86_400) * 1000,
    reconciliationRetryDurationMs:
      integer(env, 'RECONCILIATION_RETRY_DURATION_SECONDS', 7 * 86_400, 1, 365 * 86_400) * 1000,
    // Brokers SHOULD respond promptly (spec.md, "Synchronous and Asynchronous Operations"): 60 s in all.
    osbRequestTimeoutMs: integer(env, 'OSB_REQUEST_TIMEOUT_MS', 60_000, 100, 3_600_000),
    osbMaxResponseBytes: integer(env, 'OSB_MAX_RESPONSE_BYTES', DEFAULT_OSB_MAX_RESPONSE_BYTES, 1024, 1024 ** 3),
    kubeRequestTimeoutMs: integer(env, 'KUBE_REQUEST_TIMEOUT_MS', DEFAULT_KUBE_LIMITS.timeoutMs, 100, 3_600_000),
    kubeMaxResponseBytes: integer(
      env,
      'KUBE_MAX_RESPONSE_BYTES',
      DEFAULT_KUBE_LIMITS.maxResponseBytes,
      64 * 1024,
      1024 ** 3,
    ),
    clusterId,
  };
}
