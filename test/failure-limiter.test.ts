import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { FailureLimiter } from '../src/verify/failure-limiter.js';

const WINDOW = 60_000;

describe('the failure limit', () => {
  it('blocks a source at the limit until its window ends, with the time left, and no other source', () => {
    const clock = new ManualClock(1_000_000);
    const limiter = new FailureLimiter(clock, 3, WINDOW);
    for (let i = 0; i < 2; i++) limiter.fail('192.0.2.1');
    expect(limiter.blockedFor('192.0.2.1')).toBe(0);
    limiter.fail('192.0.2.1');
    expect(limiter.blockedFor('192.0.2.1')).toBe(WINDOW);
    clock.advance(20_000);
    expect(limiter.blockedFor('192.0.2.1')).toBe(40_000);
    expect(limiter.blocked('192.0.2.2')).toBe(false);
    clock.advance(40_000);
    expect(limiter.blocked('192.0.2.1')).toBe(false);
    // A new window starts with the next failure.
    limiter.fail('192.0.2.1');
    expect(limiter.blocked('192.0.2.1')).toBe(false);
  });

  it('counts into one table from every limiter given it (the threads of a process)', () => {
    const clock = new ManualClock(5_000_000);
    const main = new FailureLimiter(clock, 4, WINDOW);
    const thread = new FailureLimiter(clock, 4, WINDOW, main.table);
    main.fail('2001:db8::7');
    thread.fail('2001:db8::7');
    main.fail('2001:db8::7');
    expect(thread.blocked('2001:db8::7')).toBe(false);
    thread.fail('2001:db8::7');
    expect(main.blocked('2001:db8::7')).toBe(true);
    expect(thread.blocked('2001:db8::7')).toBe(true);
    expect(() => new FailureLimiter(clock, 4, WINDOW, new SharedArrayBuffer(16))).toThrow(/failure table/);
  });

  it('keeps 50,000 sources with open windows apart: one failure each blocks none of them at a limit of 2', () => {
    const clock = new ManualClock(9_000_000);
    const limiter = new FailureLimiter(clock, 2, WINDOW);
    const sources = Array.from({ length: 50_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    for (const s of sources) limiter.fail(s);
    expect(sources.filter((s) => limiter.blocked(s))).toEqual([]);
    // Expired windows are taken over: another 50,000 in the next window are kept apart as well.
    clock.advance(WINDOW);
    const next = sources.map((s) => `${s}:next`);
    for (const s of next) limiter.fail(s);
    expect(next.filter((s) => limiter.blocked(s))).toEqual([]);
    limiter.fail(next[0]!);
    expect(limiter.blocked(next[0]!)).toBe(true);
  });

  it('loses no failure when real threads count the same source at once', async () => {
    const table = new FailureLimiter(new ManualClock(0), 1, WINDOW).table;
    const source = new URL('../src/verify/failure-limiter.ts', import.meta.url).href;
    // Each thread opens the window first (a clock at 0), then counts 2,000 failures of one address.
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      import(workerData.tsx).then((tsx) => { tsx.register(); return import(workerData.source); }).then(({ FailureLimiter }) => {
        const limiter = new FailureLimiter({ now: () => 1 }, 1_000_000, ${WINDOW}, workerData.table);
        for (let i = 0; i < 2000; i++) limiter.fail('198.51.100.9');
        parentPort.postMessage('done');
      });`;
    const tsx = new URL('../node_modules/tsx/dist/esm/api/index.mjs', import.meta.url).href;
    const main = new FailureLimiter({ now: () => 1 } as ManualClock, 8000, WINDOW, table);
    main.fail('198.51.100.9'); // the window is open before the threads start
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        const w = new Worker(code, { eval: true, workerData: { table, source, tsx } });
        await new Promise((ok, fail) => w.once('message', ok).once('error', fail));
        await w.terminate();
      }),
    );
    // 1 + 4 × 2,000 = 8,001 failures: at a limit of 8,000 the address is blocked; at 8,002 it would not be.
    expect(main.blocked('198.51.100.9')).toBe(true);
    expect(new FailureLimiter({ now: () => 1 } as ManualClock, 8002, WINDOW, table).blocked('198.51.100.9')).toBe(false);
    expect(new FailureLimiter({ now: () => 1 } as ManualClock, 8001, WINDOW, table).blocked('198.51.100.9')).toBe(true);
  });
});
