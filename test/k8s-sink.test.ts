import { beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { createKubernetesSecretSink } from '../src/delivery/sinks/secret-sink.js';
import { type KubeClients, kubeClients, loadKubeConfig } from '../src/kubernetes/client.js';
import { KubernetesError } from '../src/kubernetes/errors.js';
import { Problem } from '../src/errors.js';
import { mintToken } from '../src/token/format.js';
import { type KubernetesEmulator, useKubernetesEmulator } from './support/k8s-emulator.js';
import { rememberSecret } from './support/output.js';

const NS = 'monitoring';
let k8s: KubernetesEmulator;
let kube: KubeClients;
const clock = new ManualClock(Date.UTC(2026, 2, 1, 12, 0, 0));
const { logger } = useKubernetesEmulator({ namespaces: ['default', NS, 'locked'], logName: 'k8s-sink' }, (cluster) => ({ k8s, kube } = cluster));
const sleeps: number[] = [];

function token(): { plaintext: string; id: string } {
  const t = mintToken();
  rememberSecret(t.plaintext);
  return { plaintext: t.plaintext, id: t.id };
}

function sink(
  name: string,
  extra: { namespace?: string; key?: string; labels?: Record<string, string>; annotations?: Record<string, string>; maxAttempts?: number; adopt?: boolean; binding?: string } = {},
) {
  return createKubernetesSecretSink(
    { namespace: extra.namespace ?? NS, name, key: extra.key ?? 'token', labels: extra.labels, annotations: extra.annotations, adopt: extra.adopt },
    { kubernetes: kube, clock, binding: extra.binding ?? 'prometheus-scrape', logger, maxAttempts: extra.maxAttempts, sleep: async (ms) => void sleeps.push(ms) },
  );
}

beforeEach(() => {
  sleeps.length = 0;
});

describe('kubernetes-secret sink', () => {
  it('creates the Secret with the key, tokenwarden labels and annotations, and never the token in metadata', async () => {
    const t = token();
    const s = sink('prom-token', { labels: { team: 'observability' }, annotations: { 'example.com/owner': 'sre' } });
    expect(s.describe).toBe('secret:monitoring/prom-token#token');
    expect(await s.write(t.plaintext)).toEqual({ changed: true });

    expect(k8s.secretValue(NS, 'prom-token', 'token')).toBe(t.plaintext);
    const obj = k8s.get('secrets', NS, 'prom-token')!;
    expect(obj.type).toBe('Opaque');
    expect(obj.metadata.labels).toEqual({ team: 'observability', 'app.kubernetes.io/managed-by': 'tokenwarden', 'tokenwarden.dev/binding': 'prometheus-scrape' });
    expect(obj.metadata.annotations).toMatchObject({
      'example.com/owner': 'sre',
      'tokenwarden.dev/token-id': t.id,
      'tokenwarden.dev/rotated-at': '2026-03-01T12:00:00Z',
      'tokenwarden.dev/created': 'true',
    });
    const meta = JSON.stringify(obj.metadata);
    expect(meta).not.toContain(t.plaintext);
    expect(meta).not.toContain(t.plaintext.slice(17, 60)); // nor the secret part
    expect(k8s.writes().map((w) => `${w.verb} ${w.name}`)).toEqual(['create prom-token']);
    expect(await s.read()).toBe(t.plaintext);
  });

  it('writes nothing when the token is already there: a retry or a restart never touches the Secret', async () => {
    const t = token();
    const s = sink('idempotent');
    await s.write(t.plaintext);
    const rv = k8s.get('secrets', NS, 'idempotent')!.metadata.resourceVersion;
    k8s.clearLog();
    clock.advance(60_000);
    for (let i = 0; i < 3; i++) expect(await sink('idempotent').write(t.plaintext)).toEqual({ changed: false });
    expect(k8s.writes()).toEqual([]);
    expect(k8s.requests.map((r) => r.verb)).toEqual(['get', 'get', 'get']);
    expect(k8s.get('secrets', NS, 'idempotent')!.metadata.resourceVersion).toBe(rv);
  });

  it('with adopt: true, updates only its key of an existing Secret and leaves other keys, labels and annotations alone', async () => {
    k8s.seed('secrets', {
      metadata: { name: 'shared', namespace: NS, labels: { app: 'prometheus' }, annotations: { note: 'made by hand' } },
      data: { 'ca.crt': Buffer.from('-----BEGIN CERTIFICATE-----').toString('base64') },
    });
    const first = token();
    const s = sink('shared', { adopt: true });
    expect(await s.write(first.plaintext)).toEqual({ changed: true });
    clock.advance(3_600_000);
    const second = token();
    k8s.clearLog();
    expect(await s.write(second.plaintext)).toEqual({ changed: true });

    expect(k8s.writes().map((w) => w.verb)).toEqual(['update']);
    const obj = k8s.get('secrets', NS, 'shared')!;
    expect(k8s.secretValue(NS, 'shared', 'token')).toBe(second.plaintext);
    expect(k8s.secretValue(NS, 'shared', 'ca.crt')).toBe('-----BEGIN CERTIFICATE-----');
    expect(obj.metadata.labels).toMatchObject({ app: 'prometheus', 'app.kubernetes.io/managed-by': 'tokenwarden' });
    expect(obj.metadata.annotations).toMatchObject({ note: 'made by hand', 'tokenwarden.dev/token-id': second.id, 'tokenwarden.dev/rotated-at': '2026-03-01T13:01:00Z' });
    // It existed before tokenwarden: never marked as created by it.
    expect(obj.metadata.annotations['tokenwarden.dev/created']).toBeUndefined();
  });

  it('repairs its own marks when someone removed them, without reporting a token change', async () => {
    const t = token();
    const s = sink('repair');
    await s.write(t.plaintext);
    k8s.touch('secrets', NS, 'repair', (o) => delete o.metadata.labels['app.kubernetes.io/managed-by']);
    k8s.clearLog();
    expect(await s.write(t.plaintext)).toEqual({ changed: false });
    expect(k8s.writes().map((w) => w.verb)).toEqual(['update']);
    expect(k8s.get('secrets', NS, 'repair')!.metadata.labels['app.kubernetes.io/managed-by']).toBe('tokenwarden');
  });

  it('on a resourceVersion conflict reads again and keeps what the other writer added', async () => {
    const s = sink('contended');
    await s.write(token().plaintext);
    const next = token();
    k8s.clearLog();
    // Between our read and our write, another controller adds a key (and so bumps resourceVersion).
    k8s.beforeNextWrite(() =>
      k8s.touch('secrets', NS, 'contended', (o) => {
        o.data['extra'] = Buffer.from('theirs').toString('base64');
      }),
    );
    expect(await s.write(next.plaintext)).toEqual({ changed: true });
    expect(k8s.requests.map((r) => `${r.verb}:${r.status}`)).toEqual(['get:200', 'update:409', 'get:200', 'update:200']);
    expect(k8s.secretValue(NS, 'contended', 'token')).toBe(next.plaintext);
    expect(k8s.secretValue(NS, 'contended', 'extra')).toBe('theirs');
    expect(sleeps).toHaveLength(1);
  });

  it('retries a bounded number of times, then fails with a message that says why', async () => {
    const s = sink('hot', { maxAttempts: 3 });
    await s.write(token().plaintext);
    k8s.forceConflicts(2, { name: 'hot' });
    const t2 = token();
    expect(await s.write(t2.plaintext)).toEqual({ changed: true });
    expect(k8s.writes({ name: 'hot' }).filter((w) => w.status === 409)).toHaveLength(2);

    k8s.forceConflicts(10, { name: 'hot' });
    const err = await s.write(token().plaintext).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubernetesError);
    expect((err as KubernetesError).failure).toBe('conflict');
    expect((err as Error).message).toMatch(/gave up after 3 attempts.*409 Conflict/);
    expect(k8s.secretValue(NS, 'hot', 'token')).toBe(t2.plaintext);
  });

  it('a concurrent create (409 AlreadyExists) is read again: refused as foreign, or updated with adopt: true', async () => {
    const other = token();
    k8s.beforeNextWrite(() => k8s.seed('secrets', { metadata: { name: 'raced-foreign', namespace: NS }, data: { other: Buffer.from('x').toString('base64') } }));
    const refused = await sink('raced-foreign').write(other.plaintext).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Problem);
    expect((refused as Problem).status).toBe(409);
    expect(k8s.get('secrets', NS, 'raced-foreign')!.data).toEqual({ other: Buffer.from('x').toString('base64') });
    k8s.clearLog();

    const t = token();
    const s = sink('raced', { adopt: true });
    k8s.beforeNextWrite(() => k8s.seed('secrets', { metadata: { name: 'raced', namespace: NS }, data: { other: Buffer.from('x').toString('base64') } }));
    expect(await s.write(t.plaintext)).toEqual({ changed: true });
    expect(k8s.requests.map((r) => `${r.verb}:${r.status}`)).toEqual(['get:404', 'create:409', 'get:200', 'update:200']);
    expect(k8s.secretValue(NS, 'raced', 'token')).toBe(t.plaintext);
    expect(k8s.secretValue(NS, 'raced', 'other')).toBe('x');
  });

  it('remove deletes a Secret it created and holds nothing else; succeeds when already gone', async () => {
    const s = sink('to-remove');
    await s.write(token().plaintext);
    k8s.clearLog();
    await s.remove();
    expect(k8s.get('secrets', NS, 'to-remove')).toBeUndefined();
    expect(k8s.writes().map((w) => w.verb)).toEqual(['delete']);
    expect(await s.read()).toBeNull();
    k8s.clearLog();
    await s.remove();
    expect(k8s.writes()).toEqual([]);
  });

  it('remove takes only its key out of a Secret that holds others or that it did not create', async () => {
    k8s.seed('secrets', { metadata: { name: 'not-ours', namespace: NS, labels: { app: 'x' } }, data: {} });
    const s = sink('not-ours', { adopt: true });
    await s.write(token().plaintext);
    await s.remove();
    const obj = k8s.get('secrets', NS, 'not-ours')!;
    expect(obj).toBeDefined();
    expect(obj.data?.token).toBeUndefined();
    expect(obj.metadata.labels).toEqual({ app: 'x' });
    expect(obj.metadata.annotations?.['tokenwarden.dev/token-id']).toBeUndefined();

    const mixed = sink('ours-with-more');
    await mixed.write(token().plaintext);
    k8s.touch('secrets', NS, 'ours-with-more', (o) => {
      o.data['added-later'] = Buffer.from('keep me').toString('base64');
    });
    await mixed.remove();
    expect(k8s.secretValue(NS, 'ours-with-more', 'added-later')).toBe('keep me');
    expect(k8s.secretValue(NS, 'ours-with-more', 'token')).toBeUndefined();
  });

  it('never takes over a Secret tokenwarden did not create for this binding, nor deletes it, without adopt: true', async () => {
    const theirs = Buffer.from('their-own-value').toString('base64');
    k8s.seed('secrets', { metadata: { name: 'foreign', namespace: NS, labels: { app: 'vault-agent' } }, data: { token: theirs } });
    const before = JSON.stringify(k8s.get('secrets', NS, 'foreign'));
    k8s.clearLog();
    const s = sink('foreign');
    const checked = await s.check().catch((e: unknown) => e);
    expect(checked).toBeInstanceOf(Problem);
    expect((checked as Problem).status).toBe(409);
    expect((checked as Problem).extra.field).toBe('name');
    expect((checked as Problem).detail).toContain('monitoring/foreign');
    expect((checked as Problem).detail).toContain('adopt: true');
    const written = await s.write(token().plaintext).catch((e: unknown) => e);
    expect(written).toBeInstanceOf(Problem);
    expect(await s.remove()).toMatchObject({ removed: false });
    expect(k8s.writes()).toEqual([]);
    expect(JSON.stringify(k8s.get('secrets', NS, 'foreign'))).toBe(before);

    // One tokenwarden made for another binding is not this binding's either.
    await sink('theirs-binding', { binding: 'other-binding' }).write(token().plaintext);
    const other = await sink('theirs-binding').write(token().plaintext).catch((e: unknown) => e);
    expect((other as Problem).status).toBe(409);
    expect(await sink('theirs-binding').remove()).toMatchObject({ removed: false });
    expect(k8s.get('secrets', NS, 'theirs-binding')!.metadata.labels['tokenwarden.dev/binding']).toBe('other-binding');
  });

  it('on removal, deletes only a Secret that still carries its labels for this binding', async () => {
    await sink('unlabelled').write(token().plaintext);
    k8s.touch('secrets', NS, 'unlabelled', (o) => {
      delete o.metadata.labels['app.kubernetes.io/managed-by'];
      delete o.metadata.labels['tokenwarden.dev/binding'];
    });
    k8s.clearLog();
    // A new process (no memory of writing it) and no record of delivery: left alone.
    expect(await sink('unlabelled').remove()).toMatchObject({ removed: false, reason: expect.stringContaining('no longer carries') });
    expect(k8s.writes()).toEqual([]);
    expect(k8s.get('secrets', NS, 'unlabelled')).toBeDefined();
    // The binding's own record says it delivered there: its key is taken out, the Secret (no longer marked as its own) is kept.
    const recorded = createKubernetesSecretSink({ namespace: NS, name: 'unlabelled', key: 'token' }, { kubernetes: kube, clock, binding: 'prometheus-scrape', logger, record: { delivered: true } });
    expect(await recorded.remove()).toEqual({ removed: true });
    expect(k8s.get('secrets', NS, 'unlabelled')).toBeDefined();
    expect(k8s.secretValue(NS, 'unlabelled', 'token')).toBeUndefined();
  });

  it('403 from RBAC says which verb on which resource in which namespace is missing', async () => {
    k8s.forbid({ namespace: 'locked' });
    const err = await sink('prom-token', { namespace: 'locked' }).write(token().plaintext).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubernetesError);
    expect((err as KubernetesError).failure).toBe('forbidden');
    expect((err as Error).message).toContain('RBAC does not allow tokenwarden to get secrets "locked/prom-token"');
    expect((err as Error).message).toContain('needs verb "get" on resource "secrets" (apiGroups [""]) in namespace "locked"');
    k8s.allow();

    // Reading allowed, updating not: the message names "update".
    const s = sink('read-only', { namespace: 'locked' });
    await s.write(token().plaintext);
    k8s.forbid({ namespace: 'locked', verbs: ['update', 'patch'] });
    const err2 = await s.write(token().plaintext).catch((e: unknown) => e);
    expect((err2 as Error).message).toContain('needs verb "update" on resource "secrets"');
  });

  it('a missing namespace is a clear error naming it, and check() refuses it with the field', async () => {
    const s = sink('prom-token', { namespace: 'no-such-ns' });
    const err = await s.write(token().plaintext).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubernetesError);
    expect((err as KubernetesError).failure).toBe('namespace-missing');
    expect((err as KubernetesError).field).toBe('namespace');
    expect((err as Error).message).toBe('namespace "no-such-ns" does not exist in the cluster: create it or fix the namespace');

    const problem = await s.check().catch((e: unknown) => e);
    expect(problem).toBeInstanceOf(Problem);
    expect((problem as Problem).extra.field).toBe('namespace');

    k8s.forbid({ namespace: 'locked', verbs: ['create'] });
    const denied = await sink('new-one', { namespace: 'locked' }).check().catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(Problem);
    expect((denied as Problem).detail).toContain('verb "create" on resource "secrets"');

    // A good sink passes its check with dry runs only: nothing is stored.
    k8s.clearLog();
    await sink('checked-only').check();
    expect(k8s.requests.map((r) => `${r.verb}${r.dryRun ? ' (dry run)' : ''}`)).toEqual(['get', 'create (dry run)']);
    expect(k8s.get('secrets', NS, 'checked-only')).toBeUndefined();
  });

  it('an API failure or bad credentials surface as errors without the token in them', async () => {
    const t = token();
    k8s.failNext(1, { verbs: ['get'], status: 503 });
    const err = await sink('flaky').write(t.plaintext).catch((e: unknown) => e);
    expect((err as KubernetesError).failure).toBe('unavailable');
    expect((err as Error).message).not.toContain(t.plaintext);
    expect(await sink('flaky').write(t.plaintext)).toEqual({ changed: true });

    const badKube = kubeClients(loadKubeConfig({ mode: 'kubeconfig', path: k8s.writeKubeconfig({ token: 'wrong-token' }) }));
    const bad = createKubernetesSecretSink({ namespace: NS, name: 'flaky', key: 'token' }, { kubernetes: badKube, clock });
    const unauth = await bad.write(t.plaintext).catch((e: unknown) => e);
    expect((unauth as KubernetesError).failure).toBe('unauthorized');
  });
});
