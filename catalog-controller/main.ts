import { createServer, type Server } from 'node:http';
import express from 'express';
import { ConfigError } from '../runtime/config.js';
import { createLogger, type Logger } from '../runtime/logger.js';
import { loadControllerConfig, type ControllerConfig } from './config.js';
import { CatalogController } from './controller.js';
import { DEFAULT_KUBE_LIMITS, KubeClient } from './kube/kube-client.js';
import { LeaderElection } from './kube/leader-election.js';
import { ControllerMetrics } from './metrics.js';

/**
 * `npm run start:controller`: the catalog controller. Kubernetes credentials come from
 * KUBECONFIG, ~/.kube/config, or the pod's service account. Replicas elect a leader on a Lease;
 * only the leader reconciles. SIGTERM stops it cleanly and hands the lease over.
 */
async function main(): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config.logLevel, 'depot-catalog-controller');
  const metrics = new ControllerMetrics();
  const client = await kubeClientOrExit(config, metrics);
  await new ControllerProcess(config, client, logger, metrics).run();
}

function configOrExit(): ControllerConfig {
  try {
    return loadControllerConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`depot-catalog-controller: configuration error: ${error.message}\n`);
    process.exit(2);
  }
}

async function kubeClientOrExit(config: ControllerConfig, metrics: ControllerMetrics): Promise<KubeClient> {
  const limits = {
    ...DEFAULT_KUBE_LIMITS,
    timeoutMs: config.kubeRequestTimeoutMs,
    maxResponseBytes: config.kubeMaxResponseBytes,
  };
  try {
    return await KubeClient.fromDefault(
      (resource, verb) => metrics.apiserverWrites.inc({ resource: resource.plural, verb }),
      limits,
    );
  } catch (error) {
    process.stderr.write(
      'depot-catalog-controller: no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): ' +
        `${(error as Error).message}\n`,
    );
    process.exit(2);
  }
}

/** The running process: its operator endpoints, its leader election, and the controller while it leads. */
class ControllerProcess {
  private controller: CatalogController | undefined;
  private reconciling = false;
  private shuttingDown = false;
  private readonly leaderElection: LeaderElection | undefined;
  private readonly server: Server;
  private readonly metricsServer: Server;

  constructor(
    private readonly config: ControllerConfig,
    private readonly client: KubeClient,
    private readonly logger: Logger,
    private readonly metrics: ControllerMetrics,
  ) {
    this.server = createServer(this.probeApp());
    this.metricsServer = createServer(this.metricsApp());
    this.leaderElection = config.leaderElection
      ? new LeaderElection(
          client,
          {
            namespace: config.namespace,
            name: config.leaseName,
            identity: config.identity,
            leaseDurationSeconds: config.leaseDurationSeconds,
            retryPeriodMs: config.leaseRetryPeriodMs,
          },
          logger,
          {
            onStartedLeading: () => void this.startReconciling(),
            // client-go's convention: a replica that lost the lease exits and starts over.
            onStoppedLeading: () => void this.shutdown(1),
          },
        )
      : undefined;
  }

  async run(): Promise<void> {
    const { port, metricsPort, metricsHost, namespace, identity } = this.config;
    await new Promise<void>((resolve) => this.server.listen(port, resolve));
    await new Promise<void>((resolve) => this.metricsServer.listen(metricsPort, metricsHost, resolve));
    this.logger.info({ port, metricsPort, metricsHost, namespace, identity }, 'controller listening');
    process.on('SIGTERM', () => void this.shutdown(0));
    process.on('SIGINT', () => void this.shutdown(0));
    if (this.leaderElection) this.leaderElection.start();
    else await this.startReconciling();
  }

  /** /healthz and /readyz, on CONTROLLER_PORT. */
  private probeApp(): express.Express {
    const app = express();
    app.get('/healthz', (_req, res) => {
      res.json({ status: 'ok' });
    });
    app.get('/readyz', (_req, res) => {
      // With leader election: ready while standing by behind another leader, and once leading only
      // when the caches are full and reconciling has started. Without leader election (a single
      // replica): always ready, even before the caches are full. Never ready while shutting down.
      const leading = this.leaderElection?.isLeader;
      const ready = !this.config.leaderElection || !leading || this.reconciling;
      res
        .status(ready && !this.shuttingDown ? 200 : 503)
        .json({ ready, leader: leading ?? true, reconciling: this.reconciling });
    });
    return app;
  }

  /** GET /metrics, on METRICS_PORT at METRICS_HOST. */
  private metricsApp(): express.Express {
    const app = express();
    app.get('/metrics', async (_req, res) => {
      res.type(this.metrics.registry.contentType).send(await this.metrics.registry.metrics());
    });
    return app;
  }

  private async startReconciling(): Promise<void> {
    if (this.shuttingDown) return;
    this.metrics.leader.set(1);
    this.controller = new CatalogController(this.client, this.config, this.logger, this.metrics);
    try {
      await this.controller.start();
      this.reconciling = true;
      this.logger.info('caches synced; reconciling');
    } catch (error) {
      this.logger.fatal(
        { err: error },
        'could not start the controller (are the CRDs applied? kubectl apply -f catalog-controller/crds/)',
      );
      await this.shutdown(1);
    }
  }

  private async shutdown(code: number): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.logger.info({ code }, 'shutting down');
    this.reconciling = false;
    await this.controller?.stop(10_000);
    await this.leaderElection?.stop();
    this.metrics.leader.set(0);
    this.server.close();
    this.metricsServer.close();
    this.client.close();
    process.exit(code);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`depot-catalog-controller: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
