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
   * Optional check at apply time (a writable directory, an existing namespace). Throws a
   * Problem whose `field` names the sink's own field (e.g. "path", "namespace"); the caller
   * prefixes it with the sink's position ("sinks.0.path").
   */
  check?(): Promise<void>;
}
