import type { OutgoingHttpHeaders } from 'node:http';
import { allowedHeaders, refusalResponse } from '../handler.js';
import { type Refusal } from '../../verify/decision.js';
import type { RequestOrigin } from '../../verify/request-origin.js';
import type { Decision } from '../../verify/decision.js';

/** What the gate does with one request: forward it with identity headers, or answer it itself. */
export type GateVerdict =
  | { allow: true; identity: OutgoingHttpHeaders }
  | { allow: false; status: number; headers: OutgoingHttpHeaders; body: string };

/** One way of checking a request: against a store (local) or by asking a tokenwarden server (remote). */
export interface GateCheck {
  /** Synchronous when the answer is cached, so the common case costs no promise. */
  check(bearer: string | undefined, source: RequestOrigin): GateVerdict | Promise<GateVerdict>;
  /** For the startup line: where the decisions come from. */
  readonly describe: string;
  close(): Promise<void>;
}

const verdicts = new WeakMap<Decision, GateVerdict>();

/** The forward-auth decision as the gate acts on it; shared constants stay shared. */
export function verdictOf(d: Decision): GateVerdict {
  let v = verdicts.get(d);
  if (v !== undefined) return v;
  if (d.status === 200) {
    const { 'content-length': _ignored, ...identity } = allowedHeaders(d.identity);
    v = { allow: true, identity };
  } else {
    const r = refusalResponse(d as Refusal);
    v = { allow: false, status: d.status, headers: r.headers, body: r.body };
  }
  verdicts.set(d, v);
  return v;
}
