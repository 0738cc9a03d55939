import type { InstanceState } from '../db/instances.js';
import type { Command } from './command.js';
import { stringFlag } from './command.js';
import { UsageError } from './errors.js';
import { json, redacted, table, timestamp } from './output.js';
import { listInstances, type InstanceFilter, type ListedInstance } from './queries.js';

const STATES: readonly InstanceState[] = ['provisioning', 'provisioned', 'create_failed', 'deprovisioning', 'deleted'];

/** Kubernetes puts the namespace in the context (OSB profile: `context.namespace`). */
const namespaceOf = (instance: ListedInstance) =>
  typeof instance.context.namespace === 'string' ? instance.context.namespace : null;

export const instancesCommand: Command = {
  name: 'instances',
  synopsis: '[--org GUID] [--space GUID] [--namespace NAME] [--service ID|NAME] [--plan ID|NAME] [--state STATE]',
  summary: 'List service instances (deleted ones only with --state deleted).',
  flags: { org: 'value', space: 'value', namespace: 'value', service: 'value', plan: 'value', state: 'value' },
  arguments: [],
  async run(context, args) {
    const state = stringFlag(args, 'state');
    if (state !== undefined && !STATES.includes(state as InstanceState)) {
      throw new UsageError(`--state must be one of ${STATES.join(', ')} (got ${JSON.stringify(state)})`);
    }
    const catalog = await context.catalog();
    const filter: InstanceFilter = { states: state ? [state as InstanceState] : [] };
    const org = stringFlag(args, 'org');
    const space = stringFlag(args, 'space');
    if (org !== undefined) filter.organizationGuid = org;
    if (space !== undefined) filter.spaceGuid = space;
    const service = stringFlag(args, 'service');
    const plan = stringFlag(args, 'plan');
    const services = service === undefined ? catalog.services : catalog.servicesNamed(service, '--service');
    if (service !== undefined) filter.serviceIds = services.map((s) => s.id);
    if (plan !== undefined) filter.planIds = catalog.planIdsNamed(plan, services, '--plan');

    const { pool, cipher } = await context.state();
    const namespace = stringFlag(args, 'namespace');
    // The namespace is in the sealed context: the contexts are opened to filter on it.
    const instances = (await listInstances(pool, cipher, filter)).filter(
      (i) => namespace === undefined || namespaceOf(i) === namespace,
    );
    const named = instances.map((i) => ({
      id: i.id,
      service_id: i.service_id,
      service_name: catalog.serviceName(i.service_id) ?? null,
      plan_id: i.plan_id,
      plan_name: catalog.planName(i.service_id, i.plan_id) ?? null,
      state: i.state,
      organization_guid: i.organization_guid,
      space_guid: i.space_guid,
      namespace: namespaceOf(i),
      context: i.context,
      parameters: redacted(i.parameters, context.showCredentials),
      dashboard_url: i.dashboard_url,
      created_at: i.created_at,
      updated_at: i.updated_at,
    }));
    if (context.json) return context.write(json(named));
    context.write(
      table(
        named,
        [
          { header: 'INSTANCE', value: (i) => i.id },
          { header: 'SERVICE', value: (i) => i.service_name ?? i.service_id },
          { header: 'PLAN', value: (i) => i.plan_name ?? i.plan_id },
          { header: 'STATE', value: (i) => i.state },
          { header: 'ORG', value: (i) => i.organization_guid },
          { header: 'SPACE', value: (i) => i.space_guid },
          { header: 'NAMESPACE', value: (i) => i.namespace },
          { header: 'CREATED', value: (i) => timestamp(i.created_at) },
        ],
        'No service instances match.',
      ),
    );
  },
};
