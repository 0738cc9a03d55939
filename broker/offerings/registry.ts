import type { BrokerConfig } from '../config.js';
import type { Logger } from '../../runtime/logger.js';
import type { Offering } from './offering.js';
import { MysqlOffering } from './mysql/mysql-offering.js';
import { PostgresqlOffering } from './postgresql/postgresql-offering.js';
import { RabbitmqOffering } from './rabbitmq/rabbitmq-offering.js';
import { RedisOffering } from './redis/redis-offering.js';

/**
 * The offerings this Depot can serve; the catalog's `x-depot.offering` picks among them by
 * name. A new offering is one more entry here (docs/writing-an-offering.md): nothing in the
 * HTTP or queue code knows which offerings exist.
 */
export function createOfferings(config: BrokerConfig, logger: Logger): Offering[] {
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
    new MysqlOffering({
      serviceUrl: config.mysqlServiceUrl,
      serverConfigured: config.mysqlServiceConfigured,
      publicHost: config.mysqlServicePublicHost,
      publicPort: config.mysqlServicePublicPort,
      logger,
    }),
    new RabbitmqOffering({
      serviceUrl: config.rabbitmqServiceUrl,
      serverConfigured: config.rabbitmqServiceConfigured,
      publicHost: config.rabbitmqServicePublicHost,
      publicPort: config.rabbitmqServicePublicPort,
      logger,
    }),
  ];
}
