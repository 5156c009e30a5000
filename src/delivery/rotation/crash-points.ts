/**
 * TEST ONLY. When the environment variable TOKENWARDEN_TEST_CRASH_AT names a rotation step, the
 * process kills itself with SIGKILL at that step boundary, so the crash test
 * (test/rotation-crash.test.ts) can prove that a rotation interrupted anywhere resumes on the
 * next start. Unset in every real deployment; reading one variable costs nothing.
 *
 * Points, in order: mint (before minting), deliver (minted, nothing written), deliver-partial
 * (the first sink written, not the others), confirm (delivered, not confirmed), grace
 * (confirmed, grace not begun), revoke (old token still live), done (old revoked, finished).
 */
export type CrashPoint = 'mint' | 'deliver' | 'deliver-partial' | 'confirm' | 'grace' | 'revoke' | 'done';

export function crashPoint(point: CrashPoint): void {
  if (process.env.TOKENWARDEN_TEST_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}
