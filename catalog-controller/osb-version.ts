import { API_MINORS, MAX_API_MINOR, SUPPORTED_API_VERSIONS, parseApiVersion, type ApiMinor } from '../osb/index.js';
import { OSB_API_VERSION_ANNOTATION, type ServiceBroker } from './api/v1beta1.js';

/** The annotation's version, `{ invalid }` for a value that is not a version the controller speaks, or undefined. */
export function pinnedApiMinor(broker: ServiceBroker): ApiMinor | { invalid: string } | undefined {
  const value = broker.metadata.annotations?.[OSB_API_VERSION_ANNOTATION];
  if (value === undefined) return undefined;
  return (
    parseApiVersion(value) ?? {
      invalid:
        `The annotation ${OSB_API_VERSION_ANNOTATION}: "${value}" is not an OSB API version ` +
        `this controller speaks (${SUPPORTED_API_VERSIONS})`,
    }
  );
}

/**
 * The version of every call to the broker: the annotation's, else the one agreed at the last
 * catalog fetch (status.osbApiVersion), else the newest.
 */
export function agreedApiMinor(broker: ServiceBroker): ApiMinor {
  const pinned = pinnedApiMinor(broker);
  if (typeof pinned === 'number') return pinned;
  return parseApiVersion(broker.status?.osbApiVersion) ?? MAX_API_MINOR;
}

/** The versions a catalog fetch offers, in order: the pinned one alone, or every one, newest first. */
export function versionsToOffer(pinned: ApiMinor | undefined): readonly ApiMinor[] {
  return pinned === undefined ? API_MINORS : [pinned];
}
