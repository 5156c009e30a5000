import { readFileSync } from 'node:fs';
import type { KubeConfigOptions } from '../../kubernetes/client.js';

/** Where doctor reads the token it explains. */
export type TokenSource =
  | { kind: 'file'; path: string }
  | { kind: 'env'; name: string }
  | { kind: 'k8s-secret'; ref: string; kubeconfig?: string; context?: string }
  | { kind: 'stdin'; read: () => Promise<string> };

export type ReadToken = { ok: true; value: string; from: string } | { ok: false; from: string; problem: string };

export function describeSource(src: TokenSource): string {
  switch (src.kind) {
    case 'file':
      return `file ${src.path}`;
    case 'env':
      return `environment variable ${src.name}`;
    case 'k8s-secret':
      return `Kubernetes Secret key ${src.ref}`;
    case 'stdin':
      return 'stdin';
  }
}

/** `namespace/name#key` (namespace optional: the kubeconfig context's). */
export function parseSecretRef(ref: string): { namespace?: string; name: string; key: string } | undefined {
  const m = /^(?:([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/)?([a-z0-9]([-.a-z0-9]*[a-z0-9])?)#([-._a-zA-Z0-9]+)$/.exec(ref);
  return m ? { namespace: m[1], name: m[3], key: m[5] } : undefined;
}

/** Reads the token, or says in plain words why it cannot be read (that is often the whole diagnosis). */
export async function readToken(src: TokenSource): Promise<ReadToken> {
  const from = describeSource(src);
  switch (src.kind) {
    case 'file': {
      try {
        const value = readFileSync(src.path, 'utf8');
        return value.trim() ? { ok: true, value, from } : { ok: false, from, problem: `the file ${src.path} is empty` };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be read (permission denied)' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${code})`;
        return { ok: false, from, problem: `the file ${src.path} ${why}` };
      }
    }
    case 'env': {
      const value = process.env[src.name];
      if (value === undefined) return { ok: false, from, problem: `the environment variable ${src.name} is not set` };
      return value.trim() ? { ok: true, value, from } : { ok: false, from, problem: `the environment variable ${src.name} is empty` };
    }
    case 'stdin': {
      const value = await src.read();
      return value.trim() ? { ok: true, value, from } : { ok: false, from, problem: 'nothing was given on stdin' };
    }
    case 'k8s-secret':
      return readSecretKey(src, from);
  }
}

async function readSecretKey(src: Extract<TokenSource, { kind: 'k8s-secret' }>, from: string): Promise<ReadToken> {
  const ref = parseSecretRef(src.ref);
  if (!ref) return { ok: false, from, problem: `"${src.ref}" is not a Secret key reference; write namespace/name#key, e.g. monitoring/prometheus-bearer-token#token` };
  // Loaded on demand: the Kubernetes client is heavy and most doctor runs do not need it.
  const [{ kubeClients, loadKubeConfig }, { describeKubeError }] = await Promise.all([import('../../kubernetes/client.js'), import('../../kubernetes/errors.js')]);
  let clients;
  try {
    const options: KubeConfigOptions = src.kubeconfig ? { mode: 'kubeconfig', path: src.kubeconfig, context: src.context } : { mode: 'auto', context: src.context };
    clients = kubeClients(loadKubeConfig(options));
  } catch (err) {
    return { ok: false, from, problem: (err as Error).message };
  }
  const namespace = ref.namespace ?? clients.defaultNamespace;
  const where = `Secret "${namespace}/${ref.name}"`;
  let secret;
  try {
    secret = await clients.core.readNamespacedSecret({ name: ref.name, namespace });
  } catch (err) {
    const e = describeKubeError(err, { verb: 'get', resource: 'secrets', group: '', namespace, name: ref.name });
    if (e.failure === 'not-found') {
      return { ok: false, from, problem: `${where} does not exist: the consumer (e.g. a ServiceMonitor's bearerTokenSecret) points at nothing; check the namespace and the name, or the binding that should deliver it` };
    }
    if (e.failure === 'forbidden') return { ok: false, from, problem: `you may not read ${where} (Kubernetes RBAC, 403); doctor needs "get" on secrets in "${namespace}"` };
    return { ok: false, from, problem: e.message };
  }
  const data = secret.data ?? {};
  const encoded = data[ref.key];
  if (encoded === undefined) {
    const keys = Object.keys(data);
    return {
      ok: false,
      from,
      problem: `${where} has no key "${ref.key}"; it has ${keys.length ? keys.map((k) => `"${k}"`).join(', ') : 'no keys at all'}. The key named in bearerTokenSecret.key (or the binding's sink key) must match`,
    };
  }
  const value = Buffer.from(encoded, 'base64').toString('utf8');
  return value.trim() ? { ok: true, value, from } : { ok: false, from, problem: `${where} key "${ref.key}" is empty` };
}
