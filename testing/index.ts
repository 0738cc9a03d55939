/**
 * What TEST_OFFERING=enabled adds to a Depot, for tests of platform integrations (never in
 * production): the failure-injecting `test` offering, its services, and the decorator that
 * answers its plans' http faults before the real broker sees a request. The broker reaches
 * this module only through that switch (broker/depot.ts imports it on demand).
 */
import { getInstance } from '../broker/db/instances.js';
import type { TestExtension } from '../broker/depot.js';
import { FaultCounter } from './fault-counter.js';
import { FaultInjectingBroker } from './fault-injecting-broker.js';
import { TEST_CATALOG_FILE, TestOffering } from './test-offering.js';

export function createTestExtension(): TestExtension {
  // Attempts are counted in this process, so they start again when Depot restarts.
  const counter = new FaultCounter();
  return {
    offering: new TestOffering(counter),
    catalogFile: TEST_CATALOG_FILE,
    wrap: (inner, { catalog, pool, cipher }) =>
      new FaultInjectingBroker({ inner, catalog, counter, findInstance: (id) => getInstance(pool, cipher, id) }),
  };
}
