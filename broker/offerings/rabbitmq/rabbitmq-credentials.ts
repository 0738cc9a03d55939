/**
 * A binding's credentials in the layout of Cloud Foundry's RabbitMQ service broker
 * (cf-rabbitmq-multitenant-broker: top-level `hostname(s)`, `uri(s)`, `http_api_uri(s)`,
 * `dashboard_url`, `ssl`, `vhost`, and one entry per protocol under `protocols`, each with
 * `host(s)`, `port`, `uri(s)`, `username`, `password`, `ssl`), so that libraries that read
 * VCAP_SERVICES for it (Spring Cloud Connectors, java-cfenv, Steeltoe) find what they expect;
 * plus the `host` and `port` every Depot offering gives. The top-level `uri` carries the port.
 */
export type RabbitmqCredentials = {
  uri: string;
  uris: string[];
  host: string;
  hostname: string;
  hostnames: string[];
  port: number;
  vhost: string;
  username: string;
  password: string;
  ssl: boolean;
  http_api_uri: string;
  http_api_uris: string[];
  dashboard_url: string;
  protocols: {
    amqp: AmqpProtocol;
    management: ManagementProtocol;
  };
};

export type AmqpProtocol = {
  host: string;
  hosts: string[];
  port: number;
  vhost: string;
  username: string;
  password: string;
  ssl: boolean;
  uri: string;
  uris: string[];
};

export type ManagementProtocol = {
  host: string;
  hosts: string[];
  port: number;
  path: string;
  username: string;
  password: string;
  ssl: boolean;
  uri: string;
  uris: string[];
};

export interface CredentialsInput {
  username: string;
  password: string;
  vhost: string;
  /** Where applications reach AMQP (RABBITMQ_SERVICE_PUBLIC_HOST/_PORT). */
  amqp: { host: string; uriHost: string; port: number };
  /** Where applications reach the management API: `http(s)://host:port/<prefix>/`, without credentials. */
  management: URL;
}

export function rabbitmqCredentials(input: CredentialsInput): RabbitmqCredentials {
  const { username, password, vhost, amqp, management } = input;
  const userinfo = `${encodeURIComponent(username)}:${encodeURIComponent(password)}`;
  const uri = `amqp://${userinfo}@${amqp.uriHost}:${amqp.port}/${encodeURIComponent(vhost)}`;
  const ssl = management.protocol === 'https:';
  const managementPort = Number(management.port || (ssl ? 443 : 80));
  const dashboard = new URL(management);
  const api = new URL('api/', management);
  api.username = username;
  api.password = password;
  const httpApiUri = api.toString();
  return {
    uri,
    uris: [uri],
    host: amqp.host,
    hostname: amqp.host,
    hostnames: [amqp.host],
    port: amqp.port,
    vhost,
    username,
    password,
    ssl: false,
    http_api_uri: httpApiUri,
    http_api_uris: [httpApiUri],
    dashboard_url: dashboard.toString(),
    protocols: {
      amqp: {
        host: amqp.host,
        hosts: [amqp.host],
        port: amqp.port,
        vhost,
        username,
        password,
        ssl: false,
        uri,
        uris: [uri],
      },
      management: {
        host: management.hostname.replace(/^\[(.*)\]$/, '$1'),
        hosts: [management.hostname.replace(/^\[(.*)\]$/, '$1')],
        port: managementPort,
        path: api.pathname,
        username,
        password,
        ssl,
        uri: httpApiUri,
        uris: [httpApiUri],
      },
    },
  };
}
