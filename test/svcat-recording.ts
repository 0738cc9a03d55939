/**
 * What svcat (Service Catalog CLI v0.3) sends to the Kubernetes API, command by command, as
 * recorded with `svcat -v 8` against a kube-apiserver 1.20 serving Depot's CRDs (namespace
 * `shop`, broker Secret `depot-auth`, Secret `db-params` with key `params` holding
 * `{"extensions":["citext"]}`). Paths and bodies are verbatim. A run of identical GETs by a
 * `--wait` is one request marked `poll`: svcat repeats it until it sees what it waits for.
 *
 * Not recorded, written from svcat v0.3's behaviour: the PUT of `touch instance` (the recording
 * is truncated; svcat PUTs the object as read with spec.updateRequests + 1), and the commands
 * `sync broker` (GET, then PUT as read with spec.relistRequests + 1) and `deregister nsbroker`.
 */

/** The broker URL in the recorded register bodies; a replay puts the running broker's in its place. */
export const RECORDED_BROKER_URL = 'http://127.0.0.1:18198';

/** The labels in the (truncated) recorded `touch instance db` body: what the controller had put on `db`. */
export const RECORDED_INSTANCE_LABELS = {
  'servicecatalog.k8s.io/spec.clusterServiceClassRef.name': '04a7fa4ef70dddbcd871a1b445994caa17029ee08d5702d8ef18fa5b',
  'servicecatalog.k8s.io/spec.clusterServicePlanRef.name': '375997583e2947bcc5a82efe21bd6733401ed7701bce6c798a9fc464',
};

export interface RecordedRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  /** The request body, verbatim. */
  body?: unknown;
  /** A GET svcat repeats (`--wait`). */
  poll?: true;
  /** A PUT of the object the previous GET returned, with this counter of its spec + 1. */
  increment?: 'updateRequests' | 'relistRequests';
}

export interface RecordedCommand {
  command: string;
  requests: RecordedRequest[];
}

const DELETE_OPTIONS = { kind: 'DeleteOptions', apiVersion: 'servicecatalog.k8s.io/v1beta1' };

export const SVCAT_COMMANDS: RecordedCommand[] = [
  {
    command:
      'svcat register depot --url http://127.0.0.1:18198' +
      ' --scope cluster --basic-secret depot-auth --namespace shop',
    requests: [
      {
        method: 'POST',
        path: '/apis/servicecatalog.k8s.io/v1beta1/clusterservicebrokers',
        body: {
          kind: 'ClusterServiceBroker',
          apiVersion: 'servicecatalog.k8s.io/v1beta1',
          metadata: {
            name: 'depot',
            creationTimestamp: null,
          },
          spec: {
            url: 'http://127.0.0.1:18198',
            relistBehavior: '',
            relistRequests: 0,
            catalogRestrictions: {},
            authInfo: {
              basic: {
                secretRef: {
                  namespace: 'shop',
                  name: 'depot-auth',
                },
              },
            },
          },
          status: {
            conditions: null,
            reconciledGeneration: 0,
            lastConditionState: '',
          },
        },
      },
    ],
  },
  {
    command:
      'svcat register nsbroker --url http://127.0.0.1:18198' +
      ' --scope namespace --namespace shop --basic-secret depot-auth',
    requests: [
      {
        method: 'POST',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/servicebrokers',
        body: {
          kind: 'ServiceBroker',
          apiVersion: 'servicecatalog.k8s.io/v1beta1',
          metadata: {
            name: 'nsbroker',
            creationTimestamp: null,
          },
          spec: {
            url: 'http://127.0.0.1:18198',
            relistBehavior: '',
            relistRequests: 0,
            catalogRestrictions: {},
            authInfo: {
              basic: {
                secretRef: {
                  name: 'depot-auth',
                },
              },
            },
          },
          status: {
            conditions: null,
            reconciledGeneration: 0,
            lastConditionState: '',
          },
        },
      },
    ],
  },
  {
    command:
      'svcat provision db --class postgresql' + ' --plan small -n shop --param extensions=citext --wait --timeout 120s',
    requests: [
      {
        method: 'GET',
        path:
          '/apis/servicecatalog.k8s.io/v1beta1/clusterserviceclasses?labelSelector=' +
          'servicecatalog.k8s.io%2Fspec.externalName%3D7ca3700906ccf537bcf99e53f3b94d2f18af7dfa034073828391a37c',
      },
      {
        method: 'GET',
        path:
          '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceclasses?labelSelector=' +
          'servicecatalog.k8s.io%2Fspec.externalName%3D7ca3700906ccf537bcf99e53f3b94d2f18af7dfa034073828391a37c',
      },
      {
        method: 'GET',
        path:
          '/apis/servicecatalog.k8s.io/v1beta1/clusterserviceplans?labelSelector=' +
          'servicecatalog.k8s.io%2Fspec.clusterServiceClassRef.name%3D' +
          '04a7fa4ef70dddbcd871a1b445994caa17029ee08d5702d8ef18fa5b%2C' +
          'servicecatalog.k8s.io%2Fspec.externalName%3Dd314aa90e652bf3932088048e8f6cc59ab5851726337f3c33371c65f',
      },
      {
        method: 'POST',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances',
        body: {
          kind: 'ServiceInstance',
          apiVersion: 'servicecatalog.k8s.io/v1beta1',
          metadata: {
            name: 'db',
            namespace: 'shop',
            creationTimestamp: null,
          },
          spec: {
            clusterServiceClassName: '3f0d6c9e-5b1a-4c57-9a34-2f6b8d0e7a11',
            clusterServicePlanName: '9c5b7d2a-1e4f-4a8b-b6c3-7d0e2f9a5b12',
            parameters: {
              extensions: 'citext',
            },
            externalID: '',
            updateRequests: 0,
          },
          status: {
            conditions: null,
            asyncOpInProgress: false,
            orphanMitigationInProgress: false,
            reconciledGeneration: 0,
            observedGeneration: 0,
            provisionStatus: '',
            deprovisionStatus: '',
            lastConditionState: '',
            userSpecifiedPlanName: '',
            userSpecifiedClassName: '',
          },
        },
      },
      {
        method: 'GET',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances/db',
        poll: true,
      },
    ],
  },
  {
    command:
      'svcat provision db2 --class postgresql' +
      ' --plan small -n shop --secret db-params[params] --wait --timeout 120s',
    requests: [
      {
        method: 'GET',
        path:
          '/apis/servicecatalog.k8s.io/v1beta1/clusterserviceclasses?labelSelector=' +
          'servicecatalog.k8s.io%2Fspec.externalName%3D7ca3700906ccf537bcf99e53f3b94d2f18af7dfa034073828391a37c',
      },
      {
        method: 'GET',
        path:
          '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceclasses?labelSelector=' +
          'servicecatalog.k8s.io%2Fspec.externalName%3D7ca3700906ccf537bcf99e53f3b94d2f18af7dfa034073828391a37c',
      },
      {
        method: 'GET',
        path:
          '/apis/servicecatalog.k8s.io/v1beta1/clusterserviceplans?labelSelector=' +
          'servicecatalog.k8s.io%2Fspec.clusterServiceClassRef.name%3D' +
          '04a7fa4ef70dddbcd871a1b445994caa17029ee08d5702d8ef18fa5b%2C' +
          'servicecatalog.k8s.io%2Fspec.externalName%3Dd314aa90e652bf3932088048e8f6cc59ab5851726337f3c33371c65f',
      },
      {
        method: 'POST',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances',
        body: {
          kind: 'ServiceInstance',
          apiVersion: 'servicecatalog.k8s.io/v1beta1',
          metadata: {
            name: 'db2',
            namespace: 'shop',
            creationTimestamp: null,
          },
          spec: {
            clusterServiceClassName: '3f0d6c9e-5b1a-4c57-9a34-2f6b8d0e7a11',
            clusterServicePlanName: '9c5b7d2a-1e4f-4a8b-b6c3-7d0e2f9a5b12',
            parameters: {},
            parametersFrom: [
              {
                secretKeyRef: {
                  name: 'db-params',
                  key: 'params',
                },
              },
            ],
            externalID: '',
            updateRequests: 0,
          },
          status: {
            conditions: null,
            asyncOpInProgress: false,
            orphanMitigationInProgress: false,
            reconciledGeneration: 0,
            observedGeneration: 0,
            provisionStatus: '',
            deprovisionStatus: '',
            lastConditionState: '',
            userSpecifiedPlanName: '',
            userSpecifiedClassName: '',
          },
        },
      },
      {
        method: 'GET',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances/db2',
        poll: true,
      },
    ],
  },
  {
    command:
      'svcat provision db3 --class postgresql' +
      ' --plan standard -n shop --params-json {"extensions":["hstore"]} --wait --timeout 120s',
    requests: [
      {
        method: 'GET',
        path:
          '/apis/servicecatalog.k8s.io/v1beta1/clusterserviceclasses?labelSelector=' +
          'servicecatalog.k8s.io%2Fspec.externalName%3D7ca3700906ccf537bcf99e53f3b94d2f18af7dfa034073828391a37c',
      },
      {
        method: 'GET',
        path:
          '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceclasses?labelSelector=' +
          'servicecatalog.k8s.io%2Fspec.externalName%3D7ca3700906ccf537bcf99e53f3b94d2f18af7dfa034073828391a37c',
      },
      {
        method: 'GET',
        path:
          '/apis/servicecatalog.k8s.io/v1beta1/clusterserviceplans?labelSelector=' +
          'servicecatalog.k8s.io%2Fspec.clusterServiceClassRef.name%3D' +
          '04a7fa4ef70dddbcd871a1b445994caa17029ee08d5702d8ef18fa5b%2C' +
          'servicecatalog.k8s.io%2Fspec.externalName%3D5436211c9e0dfe91465ab9d1c7dc0966e048661e0d9831fc8d149ba2',
      },
      {
        method: 'POST',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances',
        body: {
          kind: 'ServiceInstance',
          apiVersion: 'servicecatalog.k8s.io/v1beta1',
          metadata: {
            name: 'db3',
            namespace: 'shop',
            creationTimestamp: null,
          },
          spec: {
            clusterServiceClassName: '3f0d6c9e-5b1a-4c57-9a34-2f6b8d0e7a11',
            clusterServicePlanName: '4e8a1f3c-7b2d-4c6e-9f05-8a3b1c7d2e13',
            parameters: {
              extensions: ['hstore'],
            },
            externalID: '',
            updateRequests: 0,
          },
          status: {
            conditions: null,
            asyncOpInProgress: false,
            orphanMitigationInProgress: false,
            reconciledGeneration: 0,
            observedGeneration: 0,
            provisionStatus: '',
            deprovisionStatus: '',
            lastConditionState: '',
            userSpecifiedPlanName: '',
            userSpecifiedClassName: '',
          },
        },
      },
      {
        method: 'GET',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances/db3',
        poll: true,
      },
    ],
  },
  {
    command: 'svcat touch instance db -n shop',
    requests: [
      {
        method: 'GET',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances/db',
      },
      {
        method: 'PUT',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances/db',
        increment: 'updateRequests',
      },
    ],
  },
  {
    command: 'svcat bind db -n shop --name db-app --secret-name db-app-creds --wait --timeout 120s',
    requests: [
      {
        method: 'POST',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/servicebindings',
        body: {
          kind: 'ServiceBinding',
          apiVersion: 'servicecatalog.k8s.io/v1beta1',
          metadata: {
            name: 'db-app',
            namespace: 'shop',
            creationTimestamp: null,
          },
          spec: {
            instanceRef: {
              name: 'db',
            },
            parameters: {},
            secretName: 'db-app-creds',
            externalID: '',
          },
          status: {
            conditions: null,
            asyncOpInProgress: false,
            reconciledGeneration: 0,
            orphanMitigationInProgress: false,
            unbindStatus: '',
            lastConditionState: '',
          },
        },
      },
      {
        method: 'GET',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/servicebindings/db-app',
        poll: true,
      },
    ],
  },
  {
    command: 'svcat bind db2 -n shop --wait --timeout 120s',
    requests: [
      {
        method: 'POST',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/servicebindings',
        body: {
          kind: 'ServiceBinding',
          apiVersion: 'servicecatalog.k8s.io/v1beta1',
          metadata: {
            name: 'db2',
            namespace: 'shop',
            creationTimestamp: null,
          },
          spec: {
            instanceRef: {
              name: 'db2',
            },
            parameters: {},
            externalID: '',
          },
          status: {
            conditions: null,
            asyncOpInProgress: false,
            reconciledGeneration: 0,
            orphanMitigationInProgress: false,
            unbindStatus: '',
            lastConditionState: '',
          },
        },
      },
      {
        method: 'GET',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/servicebindings/db2',
        poll: true,
      },
    ],
  },
  {
    command: 'svcat describe binding db-app -n shop --show-secrets',
    requests: [
      {
        method: 'GET',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/servicebindings/db-app',
      },
      {
        method: 'GET',
        path: '/api/v1/namespaces/shop/secrets/db-app-creds',
      },
    ],
  },
  {
    command: 'svcat unbind -n shop --name db-app --wait --timeout 120s',
    requests: [
      {
        method: 'DELETE',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/servicebindings/db-app',
        body: DELETE_OPTIONS,
      },
      {
        method: 'GET',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/servicebindings/db-app',
        poll: true,
      },
    ],
  },
  {
    command: 'svcat unbind db2 -n shop --wait --timeout 120s',
    requests: [
      {
        method: 'GET',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances/db2',
      },
      {
        method: 'GET',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/servicebindings',
      },
      {
        method: 'DELETE',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/servicebindings/db2',
        body: DELETE_OPTIONS,
      },
      {
        method: 'GET',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/servicebindings/db2',
        poll: true,
      },
    ],
  },
  {
    command: 'svcat deprovision db -n shop --wait --timeout 120s',
    requests: [
      {
        method: 'DELETE',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances/db',
        body: DELETE_OPTIONS,
      },
      {
        method: 'GET',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances/db',
        poll: true,
      },
    ],
  },
  {
    command: 'svcat deprovision db2 -n shop --wait --timeout 120s',
    requests: [
      {
        method: 'DELETE',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances/db2',
        body: DELETE_OPTIONS,
      },
      {
        method: 'GET',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances/db2',
        poll: true,
      },
    ],
  },
  {
    command: 'svcat deprovision db3 -n shop --wait --timeout 120s',
    requests: [
      {
        method: 'DELETE',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances/db3',
        body: DELETE_OPTIONS,
      },
      {
        method: 'GET',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/serviceinstances/db3',
        poll: true,
      },
    ],
  },
  {
    command: 'svcat deregister depot --scope cluster',
    requests: [
      {
        method: 'DELETE',
        path: '/apis/servicecatalog.k8s.io/v1beta1/clusterservicebrokers/depot',
        body: DELETE_OPTIONS,
      },
    ],
  },
];

/** Commands the replay adds, not recorded: what svcat v0.3 sends for them (see the top). */
export const SVCAT_COMMANDS_NOT_RECORDED: Record<'syncBroker' | 'deregisterNsbroker', RecordedCommand> = {
  syncBroker: {
    command: 'svcat sync broker depot --scope cluster',
    requests: [
      { method: 'GET', path: '/apis/servicecatalog.k8s.io/v1beta1/clusterservicebrokers/depot' },
      {
        method: 'PUT',
        path: '/apis/servicecatalog.k8s.io/v1beta1/clusterservicebrokers/depot',
        increment: 'relistRequests',
      },
    ],
  },
  deregisterNsbroker: {
    command: 'svcat deregister nsbroker --scope namespace -n shop',
    requests: [
      {
        method: 'DELETE',
        path: '/apis/servicecatalog.k8s.io/v1beta1/namespaces/shop/servicebrokers/nsbroker',
        body: DELETE_OPTIONS,
      },
    ],
  },
};

/** A recorded command by the words it starts with, e.g. "svcat provision db2 ". */
export function svcatCommand(prefix: string): RecordedCommand {
  const found = SVCAT_COMMANDS.filter((c) => c.command.startsWith(prefix));
  if (found.length !== 1) throw new Error(`${found.length} recorded commands start with "${prefix}"`);
  return found[0]!;
}
