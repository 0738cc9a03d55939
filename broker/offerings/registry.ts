import type { BrokerConfig } from '../config.js';
import type { Logger } from '../logger.js';
import type { Offering } from './offering.js';
import { PostgresqlOffering } from './postgresql/postgresql-offering.js';
import { RedisOffering } from './redis/redis-offering.js';
import type { FaultCounter } from './test/fault-counter.js';
import { TestOffering } from './test/test-offering.js';

/**
 * The offerings this Depot can serve; the catalog's `x-depot.offering` picks among them by
 * name. A new offering is one more entry here (README, "Writing an offering"): nothing in the
 * HTTP or queue code knows which offerings exist.
 */
export function createOfferings(config: BrokerConfig, logger: Logger, faults?: FaultCounter): Offering[] {
  return [
    new PostgresqlOffering({
      serviceUrl: config.postgresServiceUrl,
      serverConfigured: config.postgresServiceConfigured,
      publicHost: config.postgresServicePublicHost,
      publicPort: config.postgresServicePublicPort,
      logger,
    }),
    new RedisOffering({
      serviceUrl: config.redisServiceUrl,
      serverConfigured: config.redisServiceConfigured,
      publicHost: config.redisServicePublicHost,
      publicPort: config.redisServicePublicPort,
      logger,
    }),
    // TEST_OFFERING=enabled: the failure-injecting test offering (never in production).
    ...(faults ? [new TestOffering(faults)] : []),
  ];
}
