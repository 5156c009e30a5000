import { createServer } from 'node:http';

/**
 * Case (1): the floor. A bare node:http server that answers 200 when the Authorization header
 * equals a constant, 401 otherwise: what any check costs at the least, with no verification.
 */
const port = Number(process.argv[2]);
const expected = process.env.BENCH_EXPECTED_AUTH ?? '';
const ok = { 'content-length': '0' };
createServer((req, res) => {
  res.writeHead(req.headers.authorization === expected ? 200 : 401, ok);
  res.end();
}).listen(port, '127.0.0.1', () => process.stdout.write(`listening on http://127.0.0.1:${port}\n`));
