import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/server-config.js';
import { createLogger } from '../src/log.js';
import { type Tokenwarden, startTokenwarden } from '../src/server.js';
import { connect } from '../src/store/connect.js';
import { InCodeMigrations } from '../src/store/migrations/index.js';
import { REVOCATION_CHANNEL, RevocationListener } from '../src/store/pg-notify.js';
import { Store } from '../src/store/store.js';
import { LOG_DIR, rememberSecret, tempDir } from './support/output.js';
import { waitFor } from './support/wait.js';
import { type PostgresServer, startPostgres } from './support/postgres.js';
import { mintFor, startTestServer } from './support/server.js';

let server: PostgresServer;

beforeAll(async () => {
  server = await startPostgres({ name: 'pg-store' });
});
afterAll(async () => {
  await server?.destroy();
});

async function query<T = any>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as T[];
  } finally {
    await client.end();
  }
}

const actorRow = (id: string) => ({ id, name: id, kind: 'service' as const, description: '', scopes: '[]', disabled: 0, created_at: 1, created_by: null });
const tokenRow = (id: string, actorId: string) => ({
  id, actor_id: actorId, name: id, scopes: '[]', secret_hash: 'h', created_at: 1, created_by: null, expires_at: Date.now() + 3_600_000,
  revoked_at: null, revoked_by: null, revoke_reason: null, replaces: null, parent: null, binding_id: null, last_used_at: null, last_used_ip: null, last_used_agent: null,
});

describe('PostgreSQL store', () => {
  it('three replicas starting together on a fresh database migrate exactly once', async () => {
    const url = await server.createDatabase('migrate');
    const conns = await Promise.all([connect(url), connect(url), connect(url)]);
    try {
      const expected = Object.keys(await new InCodeMigrations({ engine: 'postgres' }).getMigrations()).sort();
      const rows = await query<{ name: string }>(url, 'select name from kysely_migration order by name');
      expect(rows.map((r) => r.name)).toEqual(expected);
      // every replica sees the same, complete schema
      for (const c of conns) expect(await new Store(c).countActors()).toBe(0);
    } finally {
      await Promise.all(conns.map((c) => c.close()));
    }
  });

  it('three replicas starting together: one creates the first admin and the declared bindings, none fails', async () => {
    const url = await server.createDatabase('bootstrap');
    const dir = tempDir('pg-bootstrap');
    const binding = { name: 'scrape-file', actor: 'bot-scraper', scopes: ['metrics.read'], lifetime: '1d', sinks: [{ kind: 'file', path: join(dir, 'scrape.token') }] };
    const config = loadConfig({
      env: {},
      overrides: { store: { url }, listen: { port: 0 }, delivery: { keyFile: join(dir, 'delivery.key'), enabled: false } },
    });
    config.bindings = [binding as (typeof config.bindings)[number]];
    const logger = createLogger({ level: 'warn', stream: createWriteStream(join(LOG_DIR, `pg-bootstrap-${process.pid}.log`)) });
    const started = await Promise.allSettled([1, 2, 3].map(() => startTokenwarden(config, { listen: false, logger })));
    try {
      expect(started.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
      const replicas = started.map((r) => (r as PromiseFulfilledResult<Tokenwarden>).value);
      const boots = replicas.filter((r) => r.bootstrap).map((r) => rememberSecret(r.bootstrap!.plaintext));
      expect(boots).toHaveLength(1);
      expect((await replicas[0].ctx.store.listActors()).map((a) => a.name)).toEqual(['admin']);
      const rows = await query<{ name: string }>(url, 'select name from bindings');
      expect(rows.map((r) => r.name)).toEqual(['scrape-file']);
    } finally {
      for (const r of started) if (r.status === 'fulfilled') await r.value.close();
    }
  });

  it('sends the revocation on commit only, with the token id as the whole payload', async () => {
    const url = await server.createDatabase('notify');
    const store = new Store(await connect(url));
    const heard: string[] = [];
    const listener = new RevocationListener({ url, onRevoked: (id) => heard.push(id) });
    await listener.start();
    try {
      await store.insertActor(actorRow('bot-a'));
      await store.insertToken(tokenRow('tok000000001', 'bot-a'));
      await store.insertToken(tokenRow('tok000000002', 'bot-a'));
      await expect(
        store.transaction(async (s) => {
          await s.revokeToken('tok000000001', Date.now(), 'admin', null);
          throw new Error('abandoned');
        }),
      ).rejects.toThrow('abandoned');
      await store.transaction(async (s) => {
        expect(await s.revokeToken('tok000000002', Date.now(), 'admin', null)).toBe(true);
      });
      await waitFor(async () => heard.length > 0, 'the notification', 2000, 10);
      await new Promise((r) => setTimeout(r, 100));
      expect(heard).toEqual(['tok000000002']);
      // a second revoke of the same token changes nothing and says nothing
      await store.revokeToken('tok000000002', Date.now(), 'admin', null);
      await new Promise((r) => setTimeout(r, 100));
      expect(heard).toEqual(['tok000000002']);
    } finally {
      await listener.stop();
      await store.close();
    }
  });

  it('the listener reconnects after its connection is killed, resyncs, and hears later revocations', async () => {
    const url = await server.createDatabase('reconnect');
    const store = new Store(await connect(url));
    const heard: string[] = [];
    let resyncs = 0;
    const listener = new RevocationListener({ url, onRevoked: (id) => heard.push(id), onResync: () => void resyncs++, retryMs: { min: 50, max: 200 } });
    await listener.start();
    try {
      expect(resyncs).toBe(1);
      await store.insertActor(actorRow('bot-a'));
      await store.insertToken(tokenRow('tok000000003', 'bot-a'));
      const killed = await query(url, `select pg_terminate_backend(pid) from pg_stat_activity where query ilike 'LISTEN ${REVOCATION_CHANNEL}%'`);
      expect(killed).toHaveLength(1);
      await waitFor(async () => resyncs === 2 && listener.listening, 'the listener to come back', 5000, 20);
      await store.revokeToken('tok000000003', Date.now(), 'admin', null);
      await waitFor(async () => heard.includes('tok000000003'), 'the notification after reconnect', 2000, 10);
    } finally {
      await listener.stop();
      await store.close();
    }
  });

  it('two replicas in one process: a revoke on one drops the cached token on the other at once', async () => {
    const url = await server.createDatabase('replicas');
    // A cache TTL far beyond the test: only the fan-out can make the other replica refuse.
    const config = { verify: { cacheTtl: '10m', negativeCacheTtl: '10m' } };
    const a = await startTestServer({ storeUrl: url, config });
    const b = await startTestServer({ storeUrl: url, config, adminToken: a.adminToken });
    try {
      const { token, id } = await mintFor(a, 'bot-scraper', ['metrics.read']);
      const auth = (base: string) => fetch(`${base}/auth?scope=metrics.read`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
      expect(await auth(a.url)).toBe(200);
      expect(await auth(b.url)).toBe(200); // now cached on b
      expect((await a.api('DELETE', `/api/v1/tokens/${id}`)).status).toBe(200);
      const committed = performance.now();
      await waitFor(async () => (await auth(b.url)) === 401, 'replica b to refuse the revoked token', 1000, 5);
      const ms = performance.now() - committed;
      console.log(`revocation reached the other in-process replica ${ms.toFixed(1)} ms after the revoke committed`);
      expect(ms).toBeLessThan(1000);
    } finally {
      await b.close();
      await a.close();
    }
  });
});
