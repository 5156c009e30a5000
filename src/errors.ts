/**
 * The one error type that reaches users. It becomes an RFC 9457 problem body over HTTP and a
 * message plus exit code in the CLI. Messages say what was wrong and what to do; never a secret.
 */
export type ProblemKind =
  | 'bad-request'
  | 'validation'
  | 'unauthorized'
  | 'forbidden'
  | 'not-found'
  | 'conflict'
  | 'payload-too-large'
  | 'rate-limited'
  | 'unavailable'
  | 'bad-gateway'
  | 'internal';

const STATUS: Record<ProblemKind, number> = {
  'bad-request': 400,
  validation: 400,
  unauthorized: 401,
  forbidden: 403,
  'not-found': 404,
  conflict: 409,
  'payload-too-large': 413,
  'rate-limited': 429,
  unavailable: 503,
  'bad-gateway': 502,
  internal: 500,
};

const TITLES: Record<ProblemKind, string> = {
  'bad-request': 'Bad request',
  validation: 'Invalid input',
  unauthorized: 'Authentication required',
  forbidden: 'Permission denied',
  'not-found': 'Not found',
  conflict: 'Conflict',
  'payload-too-large': 'Request body too large',
  'rate-limited': 'Too many failed attempts',
  unavailable: 'Service unavailable',
  'bad-gateway': 'Upstream unreachable',
  internal: 'Internal error',
};

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  /** The input field at fault, when there is one. */
  field?: string;
  errors?: { field: string; message: string }[];
}

export class Problem extends Error {
  readonly status: number;
  constructor(
    readonly kind: ProblemKind,
    readonly detail: string,
    readonly extra: { field?: string; errors?: { field: string; message: string }[] } = {},
  ) {
    super(detail);
    this.name = 'Problem';
    this.status = STATUS[kind];
  }

  toBody(instance?: string): ProblemBody {
    return {
      type: `https://tokenwarden.dev/problems/${this.kind}`,
      title: TITLES[this.kind],
      status: this.status,
      detail: this.detail,
      ...(instance ? { instance } : {}),
      ...this.extra,
    };
  }
}

export const problem = {
  invalid: (field: string, detail: string) => new Problem('validation', detail, { field }),
  notFound: (what: string, id: string) => new Problem('not-found', `${what} "${id}" does not exist`),
  forbidden: (detail: string) => new Problem('forbidden', detail),
  conflict: (detail: string, field?: string) => new Problem('conflict', detail, field ? { field } : {}),
  unauthorized: (detail: string) => new Problem('unauthorized', detail),
};

/** The API's largest request body, and the problem a larger one gets (from the app, or from the front before it). */
export const API_BODY_LIMIT = 64 * 1024;
export const bodyTooLarge = (): Problem => new Problem('payload-too-large', `the request body is larger than ${API_BODY_LIMIT / 1024} KiB`);
