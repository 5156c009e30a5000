import { HTTP_SOURCE_KINDS, type HttpSourceConfig } from './source-config.js';
import type { SourceDeps } from './http-base.js';
import { HttpLoginSource } from './http-login.js';
import { OAuth2ClientCredentialsSource, OAuth2RefreshTokenSource } from './oauth2.js';
import type { SecretSlot } from './sealed-state.js';
import type { Source } from './source.js';

export type ClosableSource = Source & { readonly kind: string; close?(): Promise<void> };

/** Builds an HTTP source from its (already checked) configuration. */
export function createHttpSource(config: HttpSourceConfig, deps: SourceDeps, state: { slot?: SecretSlot } = {}): ClosableSource {
  switch (config.kind) {
    case 'http-login':
      return new HttpLoginSource(config, deps);
    case 'oauth2-client-credentials':
      return new OAuth2ClientCredentialsSource(config, deps);
    case 'oauth2-refresh-token':
      if (!state.slot) {
        throw new Error(
          'oauth2-refresh-token keeps the rotated refresh token sealed in its state: configure a state key ({ env: NAME } or { file: /path }, 32 bytes, e.g. "openssl rand -base64 32")',
        );
      }
      return new OAuth2RefreshTokenSource(config, deps, state.slot);
  }
}

/**
 * Builds a source of any kind. The kubernetes-secret source, and with it the Kubernetes client,
 * is loaded only when a binding uses it; `kubernetes` is the process's cluster connection
 * (clients, a KubeConfig or the server's LazyKube; absent: kubectl's lookup).
 */
export async function createSource(
  spec: Record<string, unknown> & { kind: string },
  deps: SourceDeps & { kubernetes?: unknown },
  state: { slot?: SecretSlot } = {},
): Promise<ClosableSource> {
  if (spec.kind === 'kubernetes-secret') {
    const [{ createKubernetesSecretSource }, { kubeAccess }] = await Promise.all([import('./secret-source.js'), import('../kubernetes/lazy.js')]);
    const { kind: _kind, ...config } = spec;
    return createKubernetesSecretSource(config as unknown as Parameters<typeof createKubernetesSecretSource>[0], {
      kubernetes: await kubeAccess(deps.kubernetes),
      clock: deps.clock,
      logger: deps.logger,
    });
  }
  if (!(HTTP_SOURCE_KINDS as readonly string[]).includes(spec.kind)) throw new Error(`unknown source kind "${spec.kind}"`);
  return createHttpSource(spec as unknown as HttpSourceConfig, deps, state);
}
