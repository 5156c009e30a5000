import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Authority, SYSTEM_PRINCIPAL } from '../src/authority/authority.js';
import { systemClock } from '../src/clock.js';
import { DeliveryController } from '../src/delivery/controller.js';
import { StoreLease } from '../src/delivery/leader/lease.js';
import { SealedBox } from '../src/token/sealed.js';
import { BindingService } from '../src/delivery/bindings/binding-service.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/observe/metrics.js';
import { BindingQueries } from '../src/store/bindings.js';
import { connect } from '../src/store/connect.js';
import { Store } from '../src/store/store.js';

/**
 * `npm run bench:rotation`: 1,000 bindings to file sinks on an embedded SQLite store, end to
 * end (mint → atomic file replace with fsync → confirm none → revoke old, each step committed).
 * Target: rotating all of them takes < 10 s on this machine. BENCH_BINDINGS, BENCH_CONCURRENCY.
 */
const N = Number(process.env.BENCH_BINDINGS ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);

const dir = mkdtempSync(join(tmpdir(), 'tokenwarden-bench-rotation-'));
const sinks = join(dir, 'sinks');
mkdirSync(sinks);

const store = new Store(await connect(join(dir, 'tw.db')));
const clock = systemClock;
const authority = new Authority(store, clock, { maxLifetimeMs: 365 * 86_400_000, defaultLifetimeMs: 90 * 86_400_000 });
await authority.bootstrap();
await authority.createActor(SYSTEM_PRINCIPAL, { name: 'bot-bench', kind: 'service', roles: ['metrics-read'] });
const logger = createLogger({ level: 'silent' });
const sinkDeps = { logger, clock };
const controller = new DeliveryController(
  {
    store,
    authority,
    clock,
    metrics: new Metrics({ defaultMetrics: false }),
    logger,
    sealed: SealedBox.withKey(randomBytes(32)),
    sinkDeps,
    leadership: new StoreLease(store, clock, 'bench', { ttlMs: 60_000 }),
    pollMs: 1000,
    retryBaseMs: 1000,
    retryMaxMs: 60_000,
  },
  { intervalMs: 1000, concurrency: CONCURRENCY, batch: N },
);
const service = new BindingService({ store, authority, clock, logger, sinkDeps, maxLifetimeMs: 365 * 86_400_000 });
const names = Array.from({ length: N }, (_, i) => `bench-${String(i).padStart(5, '0')}`);

async function timed(what: string, work: () => Promise<void>): Promise<{ what: string; ms: number }> {
  const t0 = performance.now();
  await work();
  return { what, ms: performance.now() - t0 };
}

/** Ticks until every binding has finished `rotations` rotations. */
async function settle(rotations: number): Promise<void> {
  const q = new BindingQueries(store);
  for (let pass = 0; pass < 50; pass++) {
    await controller.tick();
    const rows = await q.list();
    if (rows.every((r) => r.rotation_count >= rotations && r.state === 'active')) return;
  }
  throw new Error('bindings did not settle');
}

const rows: { what: string; ms: number }[] = [];
rows.push(
  await timed(`create ${N} bindings (validated)`, async () => {
    for (const name of names) {
      await service.create(SYSTEM_PRINCIPAL, {
        name,
        actor: 'bot-bench',
        scopes: ['metrics.read'],
        lifetime: '1h',
        sinks: [{ kind: 'file', path: join(sinks, `${name}.token`) }],
        rotation: { at: 0.66, jitter: 0.05, confirm: 'none', grace: '0s' },
      });
    }
  }),
);
rows.push(await timed(`first delivery of ${N}`, () => settle(1)));
const before = new Map(names.map((n) => [n, readFileSync(join(sinks, `${n}.token`), 'utf8')]));
const asked = await timed(`  ask: ${N} × rotate now (API path)`, async () => {
  for (const name of names) await service.rotate(SYSTEM_PRINCIPAL, name);
});
const driven = await timed(`  do: controller mint→file→revoke`, () => settle(2));
rows.push({ what: `rotate ${N} end to end`, ms: asked.ms + driven.ms }, asked, driven);

// Check the outcome, not just the clock: every file changed, and exactly one live token per binding.
const changed = names.filter((n) => readFileSync(join(sinks, `${n}.token`), 'utf8') !== before.get(n)).length;
const live = await store.kysely.selectFrom('tokens').select((eb) => eb.fn.countAll<number>().as('n')).where('binding_id', 'is not', null).where('revoked_at', 'is', null).executeTakeFirst();
await controller.stop();
await store.close();
rmSync(dir, { recursive: true, force: true });

const pad = (text: string, width: number) => text.padEnd(width);
const table = [
  `${pad('phase', 38)}${pad('seconds', 10)}${pad('ms/binding', 12)}bindings/s`,
  ...rows.map((r) => `${pad(r.what, 38)}${pad((r.ms / 1000).toFixed(2), 10)}${pad((r.ms / N).toFixed(2), 12)}${Math.round((N * 1000) / r.ms)}`),
];
process.stdout.write(`\n${table.join('\n')}\n\nfiles changed by the rotation: ${changed}/${N}; live binding tokens: ${Number(live?.n)} (want ${N}); concurrency ${CONCURRENCY}\n`);
const rotateMs = rows[2].ms;
process.stdout.write(`target: rotate ${N} in < 10 s → ${rotateMs < 10_000 ? 'met' : 'MISSED'} (${(rotateMs / 1000).toFixed(2)} s)\n`);
if (changed !== N || Number(live?.n) !== N) process.exitCode = 1;
