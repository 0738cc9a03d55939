import type { JsonObject } from '../../osb/index.js';
import { API_VERSION, type Secret, type ServiceBinding } from '../api/v1beta1.js';
import type { ControllerServices } from '../controller-services.js';
import { MANAGED_BY, MANAGED_BY_LABEL } from '../informers.js';
import { KubeApiError } from '../kube/kube-client.js';
import { Resources } from '../kube/resources.js';
import { secretData, transformCredentials } from '../secret-data.js';
import type { Target } from './binding-target.js';

export /** Injection into the Secret failed in a way a retry may fix. */
class InjectionError extends Error {
  override name = 'InjectionError';
}

/**
 * The bind result into the Secret `spec.secretName`, owned by the binding (servicebinding.io
 * type and provider added). A Secret of someone else's is never overwritten.
 */
export async function writeBindingSecret(
  ctx: ControllerServices,
  binding: ServiceBinding,
  target: Target,
  credentials: JsonObject,
): Promise<void> {
  const namespace = binding.metadata.namespace!;
  const name = secretNameOf(binding);
  const values = await transformCredentials(credentials, binding.spec.secretTransforms, namespace, (secretName) =>
    ctx.cluster.readSecret(namespace, secretName),
  );
  // servicebinding.io: `type` (the kind of service) and `provider`, unless the broker sent its own.
  const serviceType = typeof values.type === 'string' ? values.type : target.cls.spec.externalName;
  if (!('type' in values)) values.type = serviceType;
  if (!('provider' in values)) values.provider = target.broker.metadata.name;
  const desired: Secret = {
    metadata: {
      name,
      namespace,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY },
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: 'ServiceBinding',
          name: binding.metadata.name,
          uid: binding.metadata.uid!,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    type: `servicebinding.io/${serviceType}`,
    data: secretData(values),
  };
  let existing = ctx.informers.bindingSecrets.get(`${namespace}/${name}`);
  if (!existing) {
    try {
      await ctx.objects.createObject<Secret>(Resources.Secret, desired);
      return;
    } catch (error) {
      if (!(error instanceof KubeApiError && error.isAlreadyExists)) throw error;
      existing = await ctx.cluster.readSecret(namespace, name);
      if (!existing)
        throw new InjectionError(`Secret "${namespace}/${name}" was being created by someone else; will retry`);
    }
  }
  if (!isControlledBy(existing, binding)) {
    const owner = existing.metadata.ownerReferences?.find((o) => o.controller);
    throw new InjectionError(
      `Secret "${namespace}/${name}" is not owned by ServiceBinding, ` +
        `controllerRef: ${owner ? `${owner.kind}/${owner.name}` : 'none'}`,
    );
  }
  if (JSON.stringify(existing.data ?? {}) === JSON.stringify(desired.data)) return;
  if (existing.type !== desired.type) {
    // A Secret's type cannot change: replace it.
    await ctx.client.delete(Resources.Secret, name, namespace, { uid: existing.metadata.uid! });
    await ctx.objects.createObject<Secret>(Resources.Secret, desired);
    return;
  }
  await ctx.objects.updateObject<Secret>(Resources.Secret, existing, (copy) => {
    copy.data = desired.data!;
    copy.metadata.labels = { ...(copy.metadata.labels ?? {}), ...desired.metadata.labels };
    return true;
  });
}

export function secretNameOf(binding: ServiceBinding): string {
  return binding.spec.secretName || binding.metadata.name;
}

export function isControlledBy(secret: Secret, binding: ServiceBinding): boolean {
  return (
    secret.metadata.ownerReferences?.some(
      (o) => o.controller && o.kind === 'ServiceBinding' && o.uid === binding.metadata.uid,
    ) ?? false
  );
}
