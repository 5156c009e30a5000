import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { AppsV1Api, CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';

/**
 * Where tokenwarden finds its cluster:
 *  - `in-cluster`: the pod's service account (KUBERNETES_SERVICE_HOST/PORT and the token, CA and
 *    namespace files under /var/run/secrets/kubernetes.io/serviceaccount);
 *  - `kubeconfig`: a kubeconfig file, optionally one of its contexts;
 *  - `auto`: what kubectl does — $KUBECONFIG, then ~/.kube/config, then in-cluster.
 */
export type KubeConfigOptions =
  | { mode: 'in-cluster'; /** Tests point this at a directory laid out like a pod's filesystem. */ pathPrefix?: string }
  | { mode: 'kubeconfig'; path: string; context?: string }
  | { mode: 'auto'; context?: string };

export class KubernetesConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubernetesConfigError';
  }
}

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export function loadKubeConfig(options: KubeConfigOptions = { mode: 'auto' }): KubeConfig {
  // The client reads KUBERNETES_SERVICE_HOST/PORT and KUBECONFIG from process.env itself.
  const env = process.env;
  const kc = new KubeConfig();
  switch (options.mode) {
    case 'in-cluster': {
      if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) {
        throw new KubernetesConfigError(
          'in-cluster Kubernetes configuration needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, which are set only inside a pod; outside a cluster set kubernetes.kubeconfig',
        );
      }
      const tokenFile = `${options.pathPrefix ?? ''}${SERVICE_ACCOUNT_TOKEN}`;
      if (!existsSync(tokenFile)) {
        throw new KubernetesConfigError(`in-cluster Kubernetes configuration needs the service account token at ${tokenFile}; is automountServiceAccountToken off?`);
      }
      kc.loadFromCluster(options.pathPrefix);
      break;
    }
    case 'kubeconfig':
      if (!existsSync(options.path)) throw new KubernetesConfigError(`kubeconfig ${options.path} does not exist`);
      try {
        kc.loadFromFile(options.path);
      } catch (err) {
        throw new KubernetesConfigError(`kubeconfig ${options.path} cannot be read: ${(err as Error).message.split('\n')[0]}`);
      }
      break;
    case 'auto':
      // Without any of these the client falls back to http://localhost:8080 and later fails
      // with "HTTP protocol is not allowed when skipTLSVerify is not set or false": say so now.
      if (!env.KUBECONFIG?.split(delimiter).some((p) => p && existsSync(p)) && !existsSync(join(homedir(), '.kube', 'config')) && !env.KUBERNETES_SERVICE_HOST) {
        throw new KubernetesConfigError(noClusterMessage(env.KUBECONFIG));
      }
      try {
        kc.loadFromDefault();
      } catch (err) {
        throw new KubernetesConfigError(`cannot load the Kubernetes configuration: ${(err as Error).message.split('\n')[0]}`);
      }
      break;
  }
  const context = options.mode === 'in-cluster' ? undefined : options.context;
  if (context) {
    if (!kc.getContextObject(context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new KubernetesConfigError(`kubeconfig has no context "${context}" (it has: ${known.join(', ') || 'none'})`);
    }
    kc.setCurrentContext(context);
  }
  if (!kc.getCurrentCluster()) throw new KubernetesConfigError('the Kubernetes configuration names no cluster for its current context');
  return kc;
}

function noClusterMessage(kubeconfigEnv: string | undefined): string {
  const looked = kubeconfigEnv ? `KUBECONFIG=${kubeconfigEnv} names no existing file` : 'KUBECONFIG is not set';
  return (
    `no Kubernetes cluster is configured: this is not a pod with a service account (KUBERNETES_SERVICE_HOST is not set), ${looked}, ` +
    `and ${join(homedir(), '.kube', 'config')} does not exist. Point tokenwarden at a cluster with kubernetes.kubeconfig: /path/to/kubeconfig ` +
    '(optionally kubernetes.context) in the config file or the KUBECONFIG environment variable, or run it in a pod (kubernetes.inCluster: true); ' +
    'or remove the Kubernetes sinks, sources and restarts if there is no cluster'
  );
}

/** The typed API clients tokenwarden uses, made once from one KubeConfig. */
export interface KubeClients {
  config: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  coordination: CoordinationV1Api;
  /** The namespace of the current context (the pod's own namespace in a cluster), else "default". */
  defaultNamespace: string;
}

export function kubeClients(config: KubeConfig): KubeClients {
  return {
    config,
    core: config.makeApiClient(CoreV1Api),
    apps: config.makeApiClient(AppsV1Api),
    coordination: config.makeApiClient(CoordinationV1Api),
    defaultNamespace: config.getContextObject(config.getCurrentContext())?.namespace?.trim() || 'default',
  };
}

/** Sinks, sources and leases accept ready clients or a KubeConfig to make them from (see resolveKube). */
export type KubeAccess = KubeClients | KubeConfig;

let defaultClients: KubeClients | undefined;

/**
 * Turns whatever the wiring passed as `kubernetes` (ready clients, a KubeConfig, or nothing)
 * into clients. Nothing means kubectl's lookup ($KUBECONFIG, ~/.kube/config, in-cluster),
 * loaded once per process.
 */
export function resolveKube(kubernetes: unknown): KubeClients {
  if (kubernetes instanceof KubeConfig) return kubeClients(kubernetes);
  if (kubernetes && typeof kubernetes === 'object') {
    const k = kubernetes as Partial<KubeClients> & { clients?: KubeClients; config?: unknown };
    if (k.core && k.apps && k.coordination && k.config) return k as KubeClients;
    if (k.clients) return k.clients;
    if (k.config instanceof KubeConfig) return kubeClients(k.config);
  }
  if (kubernetes !== undefined && kubernetes !== null) {
    throw new KubernetesConfigError('the Kubernetes dependency must be a KubeConfig or the clients made by kubeClients()');
  }
  defaultClients ??= kubeClients(loadKubeConfig({ mode: 'auto' }));
  return defaultClients;
}
