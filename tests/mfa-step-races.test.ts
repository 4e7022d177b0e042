// The MFA step of sign-in racing the removal of its second factor: verifyMfa proves and spends the factor, then
// opens the session in another transaction; a change committed in between (TOTP disabled, the passkey removed,
// the recovery codes replaced) revoked every session there was, which the step's is not yet. Forced on MariaDB by
// holding the user row from another connection until the change and then the step's locking read queue behind it
// (SQLite runs one write transaction at a time, and its driver is synchronous in this process: no window to hold);
// and unforced, on both, with many steps at once. Also the change committed between the step's check of its factor
// and its spend, forced by holding the factor's rows: the spend finds the factor removed, which is not a replay.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent, Session } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { TestClock } from './support/clock.ts';
import { errorCode, extensionsOf, loginUser, registerUser } from './support/graphql.ts';
import { DISABLE_TOTP, enrollTotp, REGENERATE, TOTP_STEP_MS, totpCode, VERIFY_MFA } from './support/mfa.ts';
import { type PasskeyApp, type PasskeyBrowser, registerPasskey, startPasskeyApp } from './support/passkey-browser.ts';
import { MFA_CHANGE_USER_LOCK, queueAtRows, queueAtUserRow, SIGN_IN_USER_LOCK } from './support/row-locks.ts';
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

// The statements a factor's spend and the changes that take factors back queue on, when their rows are held.
const TOTP_ROW = 'SELECT user_id FROM mfa_totp WHERE user_id = ? FOR UPDATE';
const TOTP_SPEND = 'select%from `mfa_totp`%for update%';
const TOTP_DELETE = 'delete from `mfa_totp`%';
const RECOVERY_CODE_ROWS = 'SELECT id FROM mfa_recovery_codes WHERE user_id = ? FOR UPDATE';
const RECOVERY_CODE_SPEND = 'update `mfa_recovery_codes`%';
const RECOVERY_CODES_DELETE = 'delete from `mfa_recovery_codes`%';

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

// Between the factor's check and its spend: the change commits first, and the spend finds the factor gone, which is
// no replay. Forced by holding the factor's rows until the change's DELETE and then the step's spend queue on them.
describe.each(mariadb)('the MFA step whose factor is taken off between its check and its spend on %s', (dialect) => {
  const clock = new TestClock();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ dialect, clock });
  });
  afterAll(() => t?.close());

  it('refuses a TOTP code when TOTP is disabled before its spend: INVALID_CODE, MFA_FAILED FACTOR_REMOVED', async () => {
    const account = await registerUser(t.gql);
    const { secret, codes } = await enrollTotp(t.gql, account.accessToken, clock.now());
    clock.advance(TOTP_STEP_MS);
    const { mfaToken } = await mfaRequired(t.gql, account);
    const raced = await queueAtRows(
      t.databaseUrl,
      TOTP_ROW,
      [account.user.id],
      // With a recovery code, so that the disable spends no TOTP step.
      { run: () => t.gql(DISABLE_TOTP, { code: codes[0] }, { token: account.accessToken }), waitsOn: TOTP_DELETE },
      {
        run: () => t.gql(VERIFY_MFA, { input: { mfaToken, code: totpCode(secret, clock.now()) } }),
        waitsOn: TOTP_SPEND,
      },
    );
    expect([raced.firstWaited, raced.secondWaited]).toEqual([true, true]);
    expect(errorCode(raced.first)).toBeUndefined();
    expect(raced.first.data?.disableTotp).toMatchObject({ mfaEnabled: false, mfaMethods: [] });
    expect(errorCode(raced.second)).toBe('INVALID_CODE');
    expect(extensionsOf(raced.second)?.field).toBe('code');
    expect(raced.second.data?.verifyMfa ?? null).toBeNull();
    expect(await aftermath(t, account.user.id)).toEqual({
      sessions: [{ id: account.session.id, revoked: null }],
      events: [{ type: 'MFA_FAILED', detail: { method: 'TOTP', purpose: 'sign-in', reason: 'FACTOR_REMOVED' } }],
    });
  });

  it('refuses a recovery code whose set is replaced before its spend: INVALID_CODE, FACTOR_REMOVED', async () => {
    const account = await registerUser(t.gql);
    const { secret, codes } = await enrollTotp(t.gql, account.accessToken, clock.now());
    clock.advance(TOTP_STEP_MS);
    const { mfaToken } = await mfaRequired(t.gql, account);
    const raced = await queueAtRows(
      t.databaseUrl,
      RECOVERY_CODE_ROWS,
      [account.user.id],
      {
        run: () =>
          t.gql<{ regenerateRecoveryCodes: { codes: string[] } }>(
            REGENERATE,
            { code: totpCode(secret, clock.now()) },
            { token: account.accessToken },
          ),
        waitsOn: RECOVERY_CODES_DELETE,
      },
      { run: () => t.gql(VERIFY_MFA, { input: { mfaToken, recoveryCode: codes[0] } }), waitsOn: RECOVERY_CODE_SPEND },
    );
    expect([raced.firstWaited, raced.secondWaited]).toEqual([true, true]);
    expect(errorCode(raced.first)).toBeUndefined();
    expect(raced.first.data?.regenerateRecoveryCodes.codes).toHaveLength(10);
    expect(errorCode(raced.second)).toBe('INVALID_CODE');
    expect(extensionsOf(raced.second)?.field).toBe('recoveryCode');
    expect(await aftermath(t, account.user.id)).toEqual({
      sessions: [{ id: account.session.id, revoked: null }],
      events: [
        { type: 'MFA_FAILED', detail: { method: 'RECOVERY_CODE', purpose: 'sign-in', reason: 'FACTOR_REMOVED' } },
      ],
    });
  });

  it('still calls a recovery code spent by another step before its spend a replay: ALREADY_USED', async () => {
    const account = await registerUser(t.gql);
    const { codes } = await enrollTotp(t.gql, account.accessToken, clock.now());
    const [one, other] = [await mfaRequired(t.gql, account), await mfaRequired(t.gql, account)];
    const step = (mfaToken: string) => () =>
      t.gql<{ verifyMfa: { session: { id: string } } }>(VERIFY_MFA, { input: { mfaToken, recoveryCode: codes[0] } });
    const raced = await queueAtRows(
      t.databaseUrl,
      RECOVERY_CODE_ROWS,
      [account.user.id],
      { run: step(one.mfaToken), waitsOn: RECOVERY_CODE_SPEND },
      { run: step(other.mfaToken), waitsOn: RECOVERY_CODE_SPEND },
    );
    expect([raced.firstWaited, raced.secondWaited]).toEqual([true, true]);
    expect(errorCode(raced.first)).toBeUndefined();
    expect(errorCode(raced.second)).toBe('INVALID_CODE');
    expect(extensionsOf(raced.second)?.field).toBe('recoveryCode');
    const opened = raced.first.data?.verifyMfa.session.id as string;
    const after = await aftermath(t, account.user.id);
    expect(after.sessions).toEqual([account.session.id, opened].sort().map((id) => ({ id, revoked: null })));
    // The two steps' audit rows in whichever order they came.
    expect(after.events).toHaveLength(2);
    expect(after.events).toEqual(
      expect.arrayContaining([
        { type: 'MFA_SUCCEEDED', detail: { method: 'RECOVERY_CODE' } },
        { type: 'MFA_FAILED', detail: { method: 'RECOVERY_CODE', purpose: 'sign-in', reason: 'ALREADY_USED' } },
      ]),
    );
  });
});

describe.each(dialects())('the MFA step replayed on %s', (dialect) => {
  const clock = new TestClock();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ dialect, clock });
  });
  afterAll(() => t?.close());

  it('refuses a TOTP code of a step already used: INVALID_CODE, MFA_FAILED ALREADY_USED', async () => {
    const account = await registerUser(t.gql);
    const { secret } = await enrollTotp(t.gql, account.accessToken, clock.now());
    clock.advance(TOTP_STEP_MS);
    const code = totpCode(secret, clock.now());
    const first = await t.gql<{ verifyMfa: { session: { id: string } } }>(VERIFY_MFA, {
      input: { mfaToken: (await mfaRequired(t.gql, account)).mfaToken, code },
    });
    expect(errorCode(first)).toBeUndefined();
    const replayed = await t.gql(VERIFY_MFA, {
      input: { mfaToken: (await mfaRequired(t.gql, account)).mfaToken, code },
    });
    expect(errorCode(replayed)).toBe('INVALID_CODE');
    expect(extensionsOf(replayed)?.field).toBe('code');
    const opened = first.data?.verifyMfa.session.id as string;
    expect(await aftermath(t, account.user.id)).toEqual({
      sessions: [account.session.id, opened].sort().map((id) => ({ id, revoked: null })),
      events: [
        { type: 'MFA_SUCCEEDED', detail: { method: 'TOTP' } },
        { type: 'MFA_FAILED', detail: { method: 'TOTP', purpose: 'sign-in', reason: 'ALREADY_USED' } },
      ],
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
    let app: PasskeyApp | undefined;

    beforeAll(async () => {
      app = await startPasskeyApp(dialect);
      ({ t, browser } = app);
    }, 120_000);

    afterAll(() => app?.close());

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
