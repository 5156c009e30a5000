import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './support/output.js';
import { mintFor, startTestServer } from './support/server.js';

describe('restart on the same SQLite file', () => {
  it('keeps identities, tokens, revocations and audit; bootstraps only once', async () => {
    const dbPath = join(tempDir('persist'), 'tw.db');
    const first = await startTestServer({ dbPath });
    const keep = await mintFor(first, 'bot-keep', ['metrics.read']);
    const gone = await mintFor(first, 'bot-keep', ['metrics.read']);
    await first.api('DELETE', `/api/v1/tokens/${gone.id}`);
    await first.close();

    const second = await startTestServer({ dbPath, adminToken: first.adminToken });
    expect(second.tw.bootstrap).toBeNull();
    expect((await second.api('GET', '/api/v1/whoami', undefined, keep.token)).body.actor).toBe('bot-keep');
    expect((await second.api('GET', '/api/v1/whoami', undefined, gone.token)).status).toBe(401);
    const audit = await second.api('GET', '/api/v1/audit?action=token.revoke');
    expect(audit.body.items[0].targetId).toBe(gone.id);
    await second.close();
  });
});
