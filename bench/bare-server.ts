import { createServer } from 'node:http';

/**
 * Case (1): the floor. A bare node:http server that answers 200 when the Authorization header
 * equals a constant, 401 otherwise: what any check costs at the least, with no verification.
 */
const port = Number(process.argv[2]);
const expected = process.env.BENCH_EXPECTED_AUTH ?? '';
// BENCH_ANSWER_HEADERS (JSON): answer 200 with these headers too (case 1h: the size of tokenwarden's own answer).
const ok = { ...(JSON.parse(process.env.BENCH_ANSWER_HEADERS ?? '{}') as Record<string, string>), 'content-length': '0' };
const refused = { 'content-length': '0' };
createServer((req, res) => {
  const allowed = req.headers.authorization === expected;
  res.writeHead(allowed ? 200 : 401, allowed ? ok : refused);
  res.end();
}).listen(port, '127.0.0.1', () => process.stdout.write(`listening on http://127.0.0.1:${port}\n`));
