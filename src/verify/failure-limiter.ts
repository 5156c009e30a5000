import type { Clock } from '../clock.js';

/** Slots of the failure table (a power of two): sources with a window open at once before two share a count. */
const SLOTS = 1 << 17;
/** Slots looked at from a source's home slot before it shares one with another source. */
const PROBE = 16;
/** Per slot: fingerprint and count (Int32), window start (BigInt64, epoch ms). */
const BYTES = SLOTS * 4 * 2 + SLOTS * 8;

/**
 * Counts failed attempts per source in a fixed window; a source over the limit is refused until
 * the window ends. The counts live in a table of fixed size in a SharedArrayBuffer
 * (`FailureLimiter.table`), so that every verifier of a process — the main thread's (the API) and
 * each front or auth thread's — counts into the same one: an address gets `limit` failures per
 * window whichever thread its connections land on. Updates are atomic per field; two threads
 * opening the same source's window at the same instant may lose a count, never block a source
 * that did not fail. With more than about 50,000 sources failing in one window, some may share a
 * count (stricter, never looser). 2 MiB a process.
 */
export class FailureLimiter {
  private readonly fingerprints: Int32Array;
  private readonly counts: Int32Array;
  private readonly starts: BigInt64Array;

  constructor(
    private readonly clock: Clock,
    private readonly limit: number,
    private readonly windowMs: number,
    /** Another limiter's `table`, to count into the same one (a thread's limiter gets the main thread's). */
    readonly table: SharedArrayBuffer = new SharedArrayBuffer(BYTES),
  ) {
    if (table.byteLength !== BYTES) throw new Error(`a failure table is ${BYTES} bytes, not ${table.byteLength}`);
    this.fingerprints = new Int32Array(table, 0, SLOTS);
    this.counts = new Int32Array(table, SLOTS * 4, SLOTS);
    this.starts = new BigInt64Array(table, SLOTS * 8, SLOTS);
  }

  blocked(source: string): boolean {
    return this.blockedFor(source) > 0;
  }

  /** Milliseconds left in the source's window when it is over the limit, else 0. */
  blockedFor(source: string): number {
    if (this.limit <= 0) return 0;
    const now = this.clock.now();
    const slot = this.find(source, now, false);
    if (slot < 0) return 0;
    const left = Number(Atomics.load(this.starts, slot)) + this.windowMs - now;
    if (left <= 0) return 0;
    return Atomics.load(this.counts, slot) >= this.limit ? left : 0;
  }

  fail(source: string): void {
    if (this.limit <= 0) return;
    const now = this.clock.now();
    const slot = this.find(source, now, true);
    if (now - Number(Atomics.load(this.starts, slot)) >= this.windowMs) {
      Atomics.store(this.starts, slot, BigInt(now));
      Atomics.store(this.counts, slot, 1);
    } else {
      Atomics.add(this.counts, slot, 1);
    }
  }

  /** The source's slot: its own, or (`claim`) a free or expired one near its home, or its home slot shared. -1: none yet. */
  private find(source: string, now: number, claim: boolean): number {
    let h = 0x811c9dc5; // FNV-1a over the address's characters
    for (let i = 0; i < source.length; i++) h = Math.imul(h ^ source.charCodeAt(i), 0x01000193);
    const home = h & (SLOTS - 1);
    // A second hash, never 0 (0 marks a free slot), tells two sources with the same home apart.
    const fingerprint = (Math.imul(h ^ (h >>> 16), 0x45d9f3b) ^ source.length) | 1;
    // Double hashing (an odd step of the source's own) rather than the next slots: no runs of full slots.
    const step = (fingerprint >>> 1) | 1;
    let free = -1;
    for (let k = 0; k < PROBE; k++) {
      const slot = (home + k * step) & (SLOTS - 1);
      const f = Atomics.load(this.fingerprints, slot);
      if (f === fingerprint) return slot;
      // A slot is never emptied again (an expired one is taken over), so the first empty one ends the
      // search: the source's own slot, had it one, would lie before it. A lookup of an address that
      // never failed costs one probe, and only a claim reads window starts.
      if (f === 0) {
        if (free < 0) free = slot;
        break;
      }
      if (claim && free < 0 && now - Number(Atomics.load(this.starts, slot)) >= this.windowMs) free = slot;
    }
    if (!claim) return -1;
    if (free < 0) return home;
    const before = Atomics.load(this.fingerprints, free);
    if (Atomics.compareExchange(this.fingerprints, free, before, fingerprint) !== before) return this.find(source, now, claim);
    // A window for this source from now, with no failure yet (fail() counts the first).
    Atomics.store(this.starts, free, BigInt(now));
    Atomics.store(this.counts, free, 0);
    return free;
  }
}
