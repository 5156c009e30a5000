/**
 * Where a delivered token goes. Every sink (file, Kubernetes Secret, …) implements this and
 * nothing else; the rotation state machine only talks to this interface.
 */
export interface Sink {
  /** A stable description without secrets, e.g. "file:/etc/prometheus/token" or "secret:monitoring/prom-token#token". */
  readonly describe: string;
  /**
   * Writes the token. Must be idempotent and must not write when the content is already there
   * (compare a hash of what is there), so retries and restarts never restart consumers.
   * Returns whether anything was written, and for a sink whose ownership is judged by content
   * (a file) the SHA-256 of what it now holds, which the binding keeps in its delivered record.
   */
  write(token: string): Promise<{ changed: boolean; fingerprint?: string }>;
  /** Reads what is delivered now, or null when nothing is there. */
  read(): Promise<string | null>;
  /**
   * Deletes what was delivered (binding removal). Succeeds when already gone. A sink that finds
   * something it must not delete (a file someone changed, a Secret tokenwarden did not create)
   * leaves it and says why: `{ removed: false, reason }` (no secret in the reason).
   */
  remove(): Promise<void | { removed: boolean; reason?: string }>;
  /**
   * Calls `onChange` soon after what is delivered may have changed behind tokenwarden's back (a
   * file deleted or overwritten, a Secret edited), so the controller reads it back and refills it
   * within seconds instead of at the next `delivery.resync`. It may also fire for tokenwarden's own
   * writes and for nothing at all: the caller always reads back before acting. Returns the stop.
   */
  watch(onChange: () => void, options?: SinkWatchOptions): () => void;
  /**
   * Optional check at apply time (a writable directory, an existing namespace). Throws a
   * Problem whose `field` names the sink's own field (e.g. "path", "namespace"); the caller
   * prefixes it with the sink's position ("sinks.0.path").
   */
  check?(): Promise<void>;
}

export interface SinkWatchOptions {
  /** How often the fallback (a stat, or a read where nothing can be watched) looks; default 2 s. */
  pollMs?: number;
}

/**
 * A watch for a sink that cannot be watched natively: reads it every `pollMs` and calls
 * `onChange` when what it holds differs from the last read (a failed read counts as no change).
 */
export function watchByReading(read: () => Promise<string | null>, onChange: () => void, pollMs = 2000): () => void {
  let last: string | null | undefined;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    read()
      .then((held) => {
        if (last !== undefined && held !== last) onChange();
        last = held;
      })
      .catch(() => undefined)
      .finally(() => (busy = false));
  }, pollMs);
  timer.unref();
  return () => clearInterval(timer);
}
