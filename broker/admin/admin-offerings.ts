import { pino } from 'pino';
import { loadCatalogFile } from '../catalog/catalog-file.js';
import { CatalogError, type Catalog } from '../catalog/catalog.js';
import type { BrokerConfig } from '../config.js';
import { testExtension } from '../depot.js';
import type { Offering } from '../offerings/offering.js';
import { createOfferings } from '../offerings/registry.js';
import { createLogger, type Logger } from '../../runtime/logger.js';
import { AdminError } from './errors.js';

/** The offerings the catalog uses, as the broker builds them, and the checked catalog. */
export interface AdminOfferings {
  catalog: Catalog;
  /** The offerings the catalog's services use, in the registry's order. */
  offerings: Offering[];
  logger: Logger;
  close(): Promise<void>;
}

/**
 * The catalog and its offerings, built from the broker's configuration (CATALOG_FILE, the
 * offerings' …_SERVICE_URL, TEST_OFFERING) without asking any server: a command that needs one
 * asks it. Log lines go to standard error, as JSON, so that standard output stays the answer.
 */
export async function openAdminOfferings(config: BrokerConfig): Promise<AdminOfferings> {
  const logger = createLogger(config.logLevel, 'depot-admin', pino.destination({ dest: 2, sync: true }));
  const testing = await testExtension(config);
  const available = [...createOfferings(config, logger), ...(testing ? [testing.offering] : [])];
  const closeAll = (offerings: Offering[]) => Promise.all(offerings.map((o) => o.close().catch(() => undefined)));
  let catalog: Catalog;
  try {
    catalog = await loadCatalogFile(config.catalogFile, available, testing ? [testing.catalogFile] : []);
  } catch (error) {
    await closeAll(available);
    throw error instanceof CatalogError ? new AdminError(error.message) : error;
  }
  const offerings = available.filter((o) => catalog.usesOffering(o));
  await closeAll(available.filter((o) => !offerings.includes(o)));
  return { catalog, offerings, logger, close: async () => void (await closeAll(offerings)) };
}
