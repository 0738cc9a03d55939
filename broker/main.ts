import { ConfigError } from '../runtime/config.js';
import { loadConfig, type BrokerConfig } from './config.js';
import { createDepot, StartupError, type Depot, type Role } from './depot.js';
import { createLogger } from '../runtime/logger.js';

/**
 * `npm start` (api and workers in one process), `npm run start:api`, `npm run start:worker`.
 * The role is the first argument.
 */
async function main(): Promise<void> {
  const role = (process.argv[2] ?? 'all') as Role;
  if (!['all', 'api', 'worker'].includes(role)) {
    process.stderr.write(`usage: depot [all|api|worker] (got "${role}")\n`);
    process.exit(2);
  }
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`depot: configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel).child({ role });

  // SIGHUP: BROKER_CREDENTIALS_FILE and the TLS certificate are read again (docs/operations.md);
  // one that comes while Depot starts is carried out once it has.
  let depot: Depot | undefined;
  let reloadPending = false;
  process.on('SIGHUP', () => {
    logger.info({ signal: 'SIGHUP' }, 'reloading');
    if (depot) depot.reload();
    else reloadPending = true;
  });

  try {
    depot = await createDepot(config, { role, logger });
  } catch (error) {
    if (error instanceof StartupError || (error as Error).name === 'CatalogError') {
      process.stderr.write(`depot: ${(error as Error).message}\n`);
      process.exit(1);
    }
    throw error;
  }
  if (reloadPending) depot.reload();

  const server = depot.server;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, () => resolve());
    });
  } catch (error) {
    process.stderr.write(
      `depot: cannot listen on PORT ${config.port}: ${(error as Error).message}; set PORT for this process.\n`,
    );
    process.exit(1);
  }
  if (role !== 'worker') {
    if (config.generatedPassword) {
      // Printed once, to the terminal, never to the log.
      process.stderr.write(
        `\nDepot broker credentials (generated; set BROKER_USERNAME and BROKER_PASSWORD to choose your own):\n` +
          `  username: ${config.brokerUsername}\n  password: ${config.brokerPassword}\n\n`,
      );
    }
    logger.info({ port: config.port, ...tlsFields(config) }, 'OSB API listening');
  } else {
    logger.info({ port: config.port, ...tlsFields(config) }, 'health listening');
  }
  const { metricsPort, metricsHost } = config;
  try {
    await new Promise<void>((resolve, reject) => {
      depot.metricsServer.once('error', reject);
      depot.metricsServer.listen(metricsPort, metricsHost, () => resolve());
    });
  } catch (error) {
    process.stderr.write(
      `depot: cannot listen on METRICS_HOST ${metricsHost} METRICS_PORT ${metricsPort}: ${(error as Error).message}; ` +
        'set METRICS_PORT for this process.\n',
    );
    process.exit(1);
  }
  logger.info({ port: metricsPort, host: metricsHost }, 'metrics listening');
  if (depot.worker) {
    await depot.worker.waitUntilReady();
    logger.info({ concurrency: config.workerConcurrency }, 'operation worker running');
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    depot
      .close()
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** How PORT is served, for the "listening" line: https with the certificate's fingerprint, or http. */
function tlsFields(config: BrokerConfig): Record<string, string> {
  if (!config.tls) return { scheme: 'http' };
  return { scheme: 'https', fingerprint256: config.tls.fingerprint256, validTo: config.tls.validTo };
}

main().catch((error: unknown) => {
  process.stderr.write(`depot: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
