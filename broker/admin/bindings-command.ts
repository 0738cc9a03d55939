import type { BindResponse, JsonObject } from '../../osb/index.js';
import { getInstance } from '../db/instances.js';
import type { Command } from './command.js';
import { AdminError } from './errors.js';
import { json, REDACTED, redacted, table, timestamp } from './output.js';
import { listBindings } from './queries.js';

/**
 * A bind response as the CLI prints it: endpoints and metadata as they are; credentials, and
 * anything else the offering returned (a syslog drain or volume mount may embed a secret),
 * redacted to their keys unless --show-credentials.
 */
function shownResponse(response: BindResponse | null, show: boolean): JsonObject | null {
  if (response === null || show) return response as JsonObject | null;
  const { credentials, endpoints, metadata, ...rest } = response;
  return {
    ...(credentials ? { credentials: redacted(credentials, false) } : {}),
    ...(endpoints ? { endpoints } : {}),
    ...(metadata ? { metadata } : {}),
    ...Object.fromEntries(Object.keys(rest).map((key) => [key, REDACTED])),
  } as JsonObject;
}

export const bindingsCommand: Command = {
  name: 'bindings',
  synopsis: 'INSTANCE',
  summary: "List a service instance's bindings, in every state (credentials only with --show-credentials).",
  flags: {},
  arguments: ['INSTANCE'],
  async run(context, args) {
    const instanceId = args.positionals[0]!;
    const { pool, cipher } = await context.state();
    if (!(await getInstance(pool, cipher, instanceId))) {
      throw new AdminError(`service instance ${instanceId} does not exist`);
    }
    const bindings = (await listBindings(pool, cipher, instanceId)).map((b) => ({
      id: b.id,
      instance_id: b.instance_id,
      state: b.state,
      // The platform's app: bind_resource.app_guid, or the deprecated top-level app_guid.
      app_guid: b.bind_resource?.app_guid ?? b.app_guid,
      bind_resource: b.bind_resource,
      predecessor_binding_id: b.predecessor_binding_id,
      parameters: redacted(b.parameters, context.showCredentials),
      response: shownResponse(b.response, context.showCredentials),
      created_at: b.created_at,
      updated_at: b.updated_at,
    }));
    if (context.json) return context.write(json(bindings));
    context.write(
      table(
        bindings,
        [
          { header: 'BINDING', value: (b) => b.id },
          { header: 'STATE', value: (b) => b.state },
          { header: 'APP', value: (b) => b.app_guid },
          { header: 'CREATED', value: (b) => timestamp(b.created_at) },
          { header: 'CREDENTIALS', value: (b) => credentialsCell(b.response) },
        ],
        `Service instance ${instanceId} has no bindings.`,
      ),
    );
  },
};

function credentialsCell(response: JsonObject | null): string {
  const credentials = response?.credentials;
  if (!credentials || typeof credentials !== 'object') return '';
  return JSON.stringify(credentials);
}
