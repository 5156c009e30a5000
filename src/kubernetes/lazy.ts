import type { KubeClients } from './client.js';
import { type KubernetesConfig, kubeConfigOptionsFrom } from './kube-config.js';

/**
 * The cluster connection of a server process, made on first use: a process whose bindings only
 * write files never loads @kubernetes/client-node nor reads a kubeconfig. Sinks, sources,
 * restarts and the Lease receive this through their `kubernetes` dependency and turn it into
 * clients with `kubeAccess()` just before they call the API.
 */
export class LazyKube {
  private clients: Promise<KubeClients> | undefined;

  constructor(private readonly section: KubernetesConfig = {}) {
    // Contradictory settings are a start-up error, not a surprise at the first delivery.
    kubeConfigOptionsFrom(section);
  }

  /** Whether the clients have been made (tests check that file-only processes never do). */
  get loaded(): boolean {
    return this.clients !== undefined;
  }

  load(): Promise<KubeClients> {
    this.clients ??= (async () => {
      const { kubeClients, loadKubeConfig } = await import('./client.js');
      return kubeClients(loadKubeConfig(kubeConfigOptionsFrom(this.section)));
    })();
    // A kubeconfig that is missing now (a volume not mounted yet) may be there at the next retry.
    this.clients.catch(() => (this.clients = undefined));
    return this.clients;
  }
}

/** What the Kubernetes parts accept (a KubeConfig or clients), from whatever the wiring passed. */
export async function kubeAccess(kubernetes: unknown): Promise<unknown> {
  return kubernetes instanceof LazyKube ? kubernetes.load() : kubernetes;
}
