import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './support/wait.js';
import { rememberSecret } from './support/output.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ config: { verify: { failureLimit: 1000, header: 'X-Api-Key' } } });
});
afterAll(async () => s.close());

describe('a secret sent anywhere in a request never reaches the log', () => {
  it('header, cookie, query, path, user agent: the log has the requests but none of the secrets', async () => {
    const { token } = await mintFor(s, 'bot-leaky', ['metrics.read']);
    const plain = rememberSecret('upstream-password-Zq8wLm3vK2');
    const everywhere = (secret: string): Record<string, string> => ({
      authorization: `Bearer ${secret}`,
      'x-api-key': secret,
      cookie: `session=${secret}; other=1`,
      'proxy-authorization': `Basic ${secret}`,
      // a tokenwarden token is recognisable anywhere, even where no credential belongs
      'user-agent': `curl/8 ${secret.startsWith('twd_') ? secret : 'plain'}`,
      'x-forwarded-for': '127.0.0.9',
    });
    const paths = [
      `/auth?scope=metrics.read&access_token=${token}`,
      `/api/v1/whoami?access_token=${token}&password=${plain}&q=${token}`,
      `/api/v1/tokens/${token}`,
      `/no/such/route?api_key=${plain}&token=${token}`,
      `/metrics?access_token=${token}`,
    ];
    for (const secret of [token, plain]) {
      for (const path of paths) {
        const res = await fetch(`${s.url}${path}`, { headers: everywhere(secret) });
        await res.arrayBuffer();
        expect(res.status).toBeLessThan(500);
      }
    }
    // a body carrying the token (bad JSON, and a login-like form)
    await (await fetch(`${s.url}/api/v1/tokens`, { method: 'POST', headers: { ...everywhere(token), 'content-type': 'application/json' }, body: `{"token":"${token}",` })).arrayBuffer();
    // let the logger's stream and the last-use batch write out
    await s.tw.ctx.verifier.lastUse.flush();
    // the check looks at something: requests with these URLs were logged
    const log = await waitFor(async () => {
      const text = readFileSync(s.logFile, 'utf8');
      return text.includes('/api/v1/whoami?access_token=') && text.includes('/no/such/route?api_key=') && text;
    }, 'the requests in the log', 5000, 20);
    for (const secret of [token, plain, token.slice(17, 60)]) expect(log).not.toContain(secret);
  });
});
