import { createServer } from 'node:http';
import express from 'express';
import { ConfigError } from '../runtime/config.js';
import { createLogger } from '../runtime/logger.js';
import { loadControllerConfig } from './config.js';
import { CatalogController } from './controller.js';
import { KubeClient } from './kube/kube-client.js';
import { LeaderElection } from './kube/leader-election.js';
import { ControllerMetrics } from './metrics.js';

/**
 * `npm run start:controller`: the catalog controller. Kubernetes credentials come from
 * KUBECONFIG, ~/.kube/config, or the pod's service account. Replicas elect a leader on a Lease;
 * only the leader reconciles. SIGTERM stops it cleanly and hands the lease over.
 */
async function main(): Promise<void> {
  let config;
  try {
    config = loadControllerConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`depot-catalog-controller: configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel, 'depot-catalog-controller');
  const metrics = new ControllerMetrics();
  let client: KubeClient;
  try {
    client = KubeClient.fromDefault((resource, verb) =>
      metrics.apiserverWrites.inc({ resource: resource.plural, verb }),
    );
  } catch (error) {
    process.stderr.write(
      'depot-catalog-controller: no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): ' +
        `${(error as Error).message}\n`,
    );
    process.exit(2);
  }

  let controller: CatalogController | undefined;
  let reconciling = false;
  let shuttingDown = false;

  const app = express();
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    // With leader election: ready while standing by behind another leader, and once leading only
    // when the caches are full and reconciling has started. Without leader election (a single
    // replica): always ready, even before the caches are full. Never ready while shutting down.
    const ready = !config.leaderElection || !leaderElection?.isLeader || reconciling;
    res
      .status(ready && !shuttingDown ? 200 : 503)
      .json({ ready, leader: leaderElection?.isLeader ?? true, reconciling });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(config.port, resolve));
  logger.info({ port: config.port, namespace: config.namespace, identity: config.identity }, 'controller listening');

  const startReconciling = async (): Promise<void> => {
    if (shuttingDown) return;
    metrics.leader.set(1);
    controller = new CatalogController(client, config, logger, metrics);
    try {
      await controller.start();
      reconciling = true;
      logger.info('caches synced; reconciling');
    } catch (error) {
      logger.fatal(
        { err: error },
        'could not start the controller (are the CRDs applied? kubectl apply -f catalog-controller/crds/)',
      );
      await shutdown(1);
    }
  };

  const leaderElection = config.leaderElection
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
          onStartedLeading: () => void startReconciling(),
          // client-go's convention: a replica that lost the lease exits and starts over.
          onStoppedLeading: () => void shutdown(1),
        },
      )
    : undefined;

  async function shutdown(code: number): Promise<void> {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ code }, 'shutting down');
    reconciling = false;
    await controller?.stop(10_000);
    await leaderElection?.stop();
    metrics.leader.set(0);
    server.close();
    client.close();
    process.exit(code);
  }

  process.on('SIGTERM', () => void shutdown(0));
  process.on('SIGINT', () => void shutdown(0));
  if (leaderElection) leaderElection.start();
  else await startReconciling();
}

main().catch((error: unknown) => {
  process.stderr.write(`depot-catalog-controller: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
