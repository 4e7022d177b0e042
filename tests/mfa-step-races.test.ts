// The MFA step of sign-in racing the removal of its second factor: verifyMfa proves and spends the factor, then
// opens the session in another transaction; a change committed in between (TOTP disabled, the passkey removed,
// the recovery codes replaced) revoked every session there was, which the step's is not yet. Forced on MariaDB by
// holding the user row from another connection until the change and then the step's locking read queue behind it
// (SQLite runs one write transaction at a time, and its driver is synchronous in this process: no window to hold);
// and unforced, on both, with many steps at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent, Session } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { TestClock } from './support/clock.ts';
import { errorCode, extensionsOf, loginUser, registerUser } from './support/graphql.ts';
import { DISABLE_TOTP, enrollTotp, REGENERATE, TOTP_STEP_MS, totpCode, VERIFY_MFA } from './support/mfa.ts';
import { type PasskeyBrowser, registerPasskey, startPasskeyBrowser } from './support/passkey-browser.ts';
import { MFA_CHANGE_USER_LOCK, queueAtUserRow, SIGN_IN_USER_LOCK } from './support/row-locks.ts';
import { serviceAvailable } from './support/services.ts';

const mariadb = dialects().filter((dialect) => dialect === 'mysql');

type Account = Awaited<ReturnType<typeof registerUser>>;
type Gql = TestApp['gql'];

/**
 * Runs `change` (a second-factor change by the account's own session) and then `step` (its verifyMfa), both held
 * at the user row until the change queues for its lock and the step's sign-in waits for its shared lock (its
 * factor proven and spent), then lets them go: the change commits between the step's spend and its session.
 */
const changeThenStep = <C, S>(t: TestApp, account: Account, change: () => Promise<C>, step: () => Promise<S>) =>
  queueAtUserRow(
    t.databaseUrl,
    account.user.id,
    { run: change, waitsOn: MFA_CHANGE_USER_LOCK },
    { run: step, waitsOn: SIGN_IN_USER_LOCK },
  ).then(({ first, second, firstWaited }) => ({ change: first, step: second, changeWaited: firstWaited }));

/** The MFA_REQUIRED answer of a password sign-in. */
async function mfaRequired(gql: Gql, account: Account) {
  const required = extensionsOf(await loginUser(gql, account.user.email, account.password));
  expect(required?.code).toBe('MFA_REQUIRED');
  return required as { mfaToken: string; methods: string[]; passkeyOptions?: unknown };
}

/** What the race leaves: the user's sessions, and the MFA step's audit rows. */
async function aftermath(t: TestApp, userId: string) {
  const em = () => t.app.orm.em.fork() as Em;
  const sessions = await em().find(Session, { user: userId });
  const events = await em().find(
    AuditEvent,
    { userId, type: { $in: ['MFA_SUCCEEDED', 'MFA_FAILED'] } },
    { orderBy: { id: 'asc' } },
  );
  return {
    // By id, as the tests list them.
    sessions: sessions
      .map((session) => ({ id: session.id, revoked: session.revokedReason ?? null }))
      .sort((a, b) => (a.id < b.id ? -1 : 1)),
    events: events.map((event) => ({ type: event.type, detail: JSON.parse(event.detail ?? '{}') })),
  };
}

describe.each(mariadb)('the MFA step racing a TOTP change on %s', (dialect) => {
  const clock = new TestClock();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ dialect, clock });
  });
  afterAll(() => t?.close());

  it('opens no session with a TOTP code once TOTP is disabled: INVALID_CODE, MFA_FAILED FACTOR_REMOVED', async () => {
    const account = await registerUser(t.gql);
    const { secret, codes } = await enrollTotp(t.gql, account.accessToken, clock.now());
    clock.advance(TOTP_STEP_MS);
    const { mfaToken } = await mfaRequired(t.gql, account);
    const raced = await changeThenStep(
      t,
      account,
      // With a recovery code: the step spends this step's TOTP code first.
      () => t.gql(DISABLE_TOTP, { code: codes[0] }, { token: account.accessToken }),
      () => t.gql(VERIFY_MFA, { input: { mfaToken, code: totpCode(secret, clock.now()) } }),
    );
    expect(errorCode(raced.change)).toBeUndefined();
    expect(raced.change.data?.disableTotp).toMatchObject({ mfaEnabled: false, mfaMethods: [] });
    expect(errorCode(raced.step)).toBe('INVALID_CODE');
    expect(extensionsOf(raced.step)?.field).toBe('code');
    expect(raced.step.data?.verifyMfa ?? null).toBeNull();
    // Only the session that disabled TOTP: the step's rolled back with its audit rows.
    expect(await aftermath(t, account.user.id)).toEqual({
      sessions: [{ id: account.session.id, revoked: null }],
      events: [{ type: 'MFA_FAILED', detail: { method: 'TOTP', purpose: 'sign-in', reason: 'FACTOR_REMOVED' } }],
    });
    // The mfaToken went with the spend.
    const again = await t.gql(VERIFY_MFA, { input: { mfaToken, code: totpCode(secret, clock.now()) } });
    expect(errorCode(again)).toBe('UNAUTHENTICATED');
    expect(extensionsOf(again)?.reason).toBe('INVALID_TOKEN');
  });

  it('opens no session with a recovery code of a set replaced meanwhile: INVALID_CODE, FACTOR_REMOVED', async () => {
    const account = await registerUser(t.gql);
    const { secret, codes } = await enrollTotp(t.gql, account.accessToken, clock.now());
    clock.advance(TOTP_STEP_MS);
    const { mfaToken } = await mfaRequired(t.gql, account);
    const raced = await changeThenStep(
      t,
      account,
      () =>
        t.gql<{ regenerateRecoveryCodes: { codes: string[] } }>(
          REGENERATE,
          { code: totpCode(secret, clock.now()) },
          { token: account.accessToken },
        ),
      () => t.gql(VERIFY_MFA, { input: { mfaToken, recoveryCode: codes[0] } }),
    );
    expect(errorCode(raced.change)).toBeUndefined();
    expect(raced.change.data?.regenerateRecoveryCodes.codes).toHaveLength(10);
    expect(errorCode(raced.step)).toBe('INVALID_CODE');
    expect(extensionsOf(raced.step)?.field).toBe('recoveryCode');
    expect(await aftermath(t, account.user.id)).toEqual({
      sessions: [{ id: account.session.id, revoked: null }],
      events: [
        { type: 'MFA_FAILED', detail: { method: 'RECOVERY_CODE', purpose: 'sign-in', reason: 'FACTOR_REMOVED' } },
      ],
    });
  });

  it('still signs in when the change leaves the factor standing: a TOTP code while the codes are replaced', async () => {
    const account = await registerUser(t.gql);
    const { secret } = await enrollTotp(t.gql, account.accessToken, clock.now());
    clock.advance(TOTP_STEP_MS);
    const { mfaToken } = await mfaRequired(t.gql, account);
    const code = totpCode(secret, clock.now());
    // The regeneration takes the next step's code (this step's is the sign-in's), within the drift window.
    const raced = await changeThenStep(
      t,
      account,
      () => t.gql(REGENERATE, { code: totpCode(secret, clock.now(), 1) }, { token: account.accessToken }),
      () => t.gql<{ verifyMfa: { session: { id: string } } }>(VERIFY_MFA, { input: { mfaToken, code } }),
    );
    expect(errorCode(raced.change)).toBeUndefined();
    expect(errorCode(raced.step)).toBeUndefined();
    const opened = raced.step.data?.verifyMfa.session.id as string;
    // The regeneration committed first and found no session of the step's; the step's stands.
    expect(await aftermath(t, account.user.id)).toEqual({
      sessions: [account.session.id, opened].sort().map((id) => ({ id, revoked: null })),
      events: [{ type: 'MFA_SUCCEEDED', detail: { method: 'TOTP' } }],
    });
  });
});

// Unforced: many recovery-code steps at once with both changes that take the codes back. Whatever the order, no
// step's session may outlive the last change (each revokes what it finds; a step after it holds a code gone).
describe.each(dialects())('MFA steps at once with the changes that take their codes back on %s', (dialect) => {
  const clock = new TestClock();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ dialect, clock });
  });
  afterAll(() => t?.close());

  it('leaves only the changing session: every step either fails or has its session revoked', async () => {
    for (let round = 0; round < 6; round++) {
      const account = await registerUser(t.gql);
      const { secret, codes } = await enrollTotp(t.gql, account.accessToken, clock.now());
      clock.advance(TOTP_STEP_MS);
      const steps = await Promise.all(codes.slice(0, 8).map(() => mfaRequired(t.gql, account)));
      // The changes a little later each round, for other interleavings with the steps.
      const later = <T>(change: () => Promise<T>) =>
        new Promise((resolve) => setTimeout(resolve, round * 5)).then(change);
      const answers = await Promise.all([
        ...steps.map(({ mfaToken }, i) => t.gql(VERIFY_MFA, { input: { mfaToken, recoveryCode: codes[i] } })),
        later(() => t.gql(REGENERATE, { code: totpCode(secret, clock.now()) }, { token: account.accessToken })),
        later(() => t.gql(DISABLE_TOTP, { code: codes[9] }, { token: account.accessToken })),
      ]);
      for (const answer of answers.slice(0, steps.length)) {
        expect([undefined, 'INVALID_CODE']).toContain(errorCode(answer));
      }
      const live = await (t.app.orm.em.fork() as Em).find(Session, { user: account.user.id, revokedAt: null });
      expect(live.map((session) => session.id)).toEqual([account.session.id]);
      clock.advance(TOTP_STEP_MS);
    }
  }, 60_000);
});

describe.skipIf(!serviceAvailable('chromium')).each(mariadb)(
  'the MFA step racing a passkey removal on %s',
  (dialect) => {
    let t: TestApp;
    let browser: PasskeyBrowser;

    beforeAll(async () => {
      browser = await startPasskeyBrowser();
      t = await startTestApp({ dialect, env: { WEBAUTHN_RP_ID: 'localhost', WEBAUTHN_ORIGINS: browser.origin } });
    }, 120_000);

    afterAll(async () => {
      await browser?.close();
      await t?.close();
    });

    /** An account whose one factor is a passkey, at its MFA step: the step's token and a valid assertion. */
    async function atPasskeyStep() {
      const account = await registerUser(t.gql);
      const passkeyId = await registerPasskey(t.gql, browser, account.accessToken);
      const required = await mfaRequired(t.gql, account);
      expect(required.methods).toEqual(['PASSKEY']);
      const assertion = await browser.authenticate(required.passkeyOptions);
      const removal = () =>
        t.gql<{ removePasskey: { passkeys: { id: string }[] } }>(
          'mutation($id: ID!) { removePasskey(id: $id) { passkeys { id } } }',
          { id: passkeyId },
          { token: account.accessToken },
        );
      const step = () =>
        t.gql<{ verifyMfa: { session: { id: string } } }>(VERIFY_MFA, {
          input: { mfaToken: required.mfaToken, passkeyResponse: assertion },
        });
      return { account, removal, step };
    }

    it('opens no session with the assertion of a passkey removed meanwhile, and the removal waited', async () => {
      const { account, removal, step } = await atPasskeyStep();
      const raced = await changeThenStep(t, account, removal, step);
      expect(errorCode(raced.change)).toBeUndefined();
      expect(raced.change.data?.removePasskey.passkeys).toEqual([]);
      expect(errorCode(raced.step)).toBe('INVALID_CODE');
      expect(extensionsOf(raced.step)?.field).toBe('passkeyResponse');
      expect(await aftermath(t, account.user.id)).toEqual({
        sessions: [{ id: account.session.id, revoked: null }],
        events: [{ type: 'MFA_FAILED', detail: { method: 'PASSKEY', purpose: 'sign-in', reason: 'FACTOR_REMOVED' } }],
      });
      // Passkey changes take the user row first, as TOTP changes do: the removal queued behind the holder.
      expect(raced.changeWaited).toBe(true);
    }, 60_000);

    it('revokes the session of a step that reached its lock first: the removal waits for it (MFA_CHANGED)', async () => {
      const { account, removal, step } = await atPasskeyStep();
      // The step's factor is proven and spent and its sign-in waits on the user row; then the removal comes.
      const raced = await queueAtUserRow(
        t.databaseUrl,
        account.user.id,
        { run: step, waitsOn: SIGN_IN_USER_LOCK },
        { run: removal, waitsOn: MFA_CHANGE_USER_LOCK },
      );
      expect(errorCode(raced.second)).toBeUndefined();
      expect(raced.second.data?.removePasskey.passkeys).toEqual([]);
      // The step opened its session and the removal, after it, revoked it with the others.
      expect(errorCode(raced.first)).toBeUndefined();
      const opened = raced.first.data?.verifyMfa.session.id as string;
      expect(await aftermath(t, account.user.id)).toEqual({
        sessions: [
          { id: account.session.id, revoked: null },
          { id: opened, revoked: 'MFA_CHANGED' },
        ].sort((a, b) => (a.id < b.id ? -1 : 1)),
        events: [{ type: 'MFA_SUCCEEDED', detail: { method: 'PASSKEY' } }],
      });
      // Because it could not commit while the step held the user row.
      expect(raced.secondWaited).toBe(true);
    }, 60_000);
  },
);
