import type { Clock } from '../clock.js';
import type { Logger } from '../observe/log.js';
import type { RefreshableSource } from './refresher.js';

/**
 * The kubernetes-secret source lives in its own module (src/sources/kubernetes-secret.ts) and is
 * loaded on first use, so a process without such a binding never loads the Kubernetes client.
 * The specifier is a variable so this file compiles before that module exists.
 */
const MODULE = './kubernetes-secret.js';

export interface KubernetesSourceDeps {
  clock: Clock;
  logger: Logger;
  binding: string;
  /** A KubeConfig or client, when the caller has one; opaque here. */
  kubernetes?: unknown;
}

export async function loadKubernetesSecretSource(spec: Record<string, unknown>, deps: KubernetesSourceDeps): Promise<RefreshableSource> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(MODULE)) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') throw new Error('the kubernetes-secret source is not available in this build of tokenwarden');
    throw err;
  }
  const factory = mod.createKubernetesSecretSource as ((spec: unknown, deps: unknown) => RefreshableSource | Promise<RefreshableSource>) | undefined;
  if (typeof factory !== 'function') throw new Error('the kubernetes-secret source module has no createKubernetesSecretSource(spec, deps)');
  return factory(spec, deps);
}
