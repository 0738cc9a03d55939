import type { Secret, ServiceBroker } from '../api/v1beta1.js';
import { CallLimitError } from '../call-limits.js';

/** The broker's auth Secret is missing or lacks a key (ErrorGettingAuthCredentials). */
export class BrokerAuthError extends Error {
  override name = 'BrokerAuthError';
}

export type ReadSecret = (namespace: string, name: string) => Promise<Secret | undefined>;

/**
 * The Authorization header for a broker from spec.authInfo: Basic from the keys `username` and
 * `password`, or Bearer from `token`; undefined without authInfo.
 */
export async function brokerAuthorization(broker: ServiceBroker, readSecret: ReadSecret): Promise<string | undefined> {
  const auth = broker.spec.authInfo;
  const ref = auth?.basic?.secretRef ?? auth?.bearer?.secretRef;
  if (!auth || !ref) return undefined;
  // ClusterServiceBroker names the Secret's namespace; a ServiceBroker's is its own.
  const namespace = broker.kind === 'ServiceBroker' ? broker.metadata.namespace : ref.namespace;
  if (!namespace || !ref.name) throw new BrokerAuthError('authInfo secretRef needs a namespace and a name');
  const secret = await readSecret(namespace, ref.name).catch((error: unknown) => {
    // A read past KUBE_REQUEST_TIMEOUT_MS or KUBE_MAX_RESPONSE_BYTES shows in the broker's conditions.
    if (error instanceof CallLimitError)
      throw new BrokerAuthError(`auth secret "${namespace}/${ref.name}" could not be read: ${error.message}`);
    throw error;
  });
  if (!secret) throw new BrokerAuthError(`auth secret "${namespace}/${ref.name}" not found`);
  const read = (key: string): string | undefined => {
    const value = secret.data?.[key];
    return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
  };
  if (auth.basic?.secretRef) {
    const username = read('username');
    const password = read('password');
    if (username === undefined || password === undefined) {
      throw new BrokerAuthError(`auth secret "${namespace}/${ref.name}" must have keys "username" and "password"`);
    }
    return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  }
  const token = read('token');
  if (token === undefined) throw new BrokerAuthError(`auth secret "${namespace}/${ref.name}" must have key "token"`);
  return `Bearer ${token}`;
}
