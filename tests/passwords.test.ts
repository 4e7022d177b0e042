// Input rules of password accounts (API.md, "Errors"): email normalisation and validation, 8 to 72 UTF-8 bytes
// of password never truncated, display names in code points, unique emails, and what a failed login leaves behind.
import { randomUUID } from 'node:crypto';
import bcrypt from 'bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent, User } from '../src/db/entities.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import {
  errorCode,
  type Gql,
  type GraphQLResponse,
  loginUser,
  PAYLOAD,
  type Payload,
  registerUser,
  uniqueEmail,
} from './support/graphql.ts';

const REGISTER = `mutation($input: RegisterInput!) { register(input: $input) { ${PAYLOAD} } }`;

const bytes = (text: string) => Buffer.byteLength(text, 'utf8');

function register(gql: Gql, input: { email: string; password?: string; displayName?: string | null }) {
  return gql<{ register: Payload }>(REGISTER, { input: { password: 'correct horse battery', ...input } });
}

/** Expects a BAD_USER_INPUT answer blaming exactly `field`, and no data. */
function expectBadInput(response: GraphQLResponse, field: string) {
  expect(response.errors).toHaveLength(1);
  expect(response.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field });
  expect(response.data ?? null).toBeNull();
}

describe.each(dialects())('password account input rules on %s', (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ dialect });
  });
  afterAll(() => t?.close());

  const userRow = (email: string) => t.app.orm.em.fork().findOne(User, { email }, { disableIdentityMap: true });
  const usersWithEmail = (email: string) => t.app.orm.em.fork().count(User, { email });

  describe('email', () => {
    it('is trimmed and lower-cased, so that any case signs in to the same account', async () => {
      const local = `Mixed.Case-${randomUUID().slice(0, 8)}`;
      const email = `${local}@Example.COM`.toLowerCase();
      const registered = await register(t.gql, { email: `  ${local}@Example.COM \t` });
      expect(registered.errors).toBeUndefined();
      expect(registered.data?.register.user.email).toBe(email);
      expect((await userRow(email))?.email).toBe(email);

      for (const variant of [email.toUpperCase(), `${local}@example.com`, `  ${email}  `]) {
        const login = await loginUser(t.gql, variant, 'correct horse battery');
        expect(login.errors).toBeUndefined();
        expect(login.data?.login.user).toMatchObject({ id: registered.data?.register.user.id, email });
      }
    });

    it('is refused with BAD_USER_INPUT on email when it is not an address', async () => {
      const invalid = [
        '',
        '   ',
        'plainaddress',
        'no-at-sign.example.com',
        '@example.com',
        'user@',
        'user@localhost',
        'two@@example.com',
        'a@b@example.com',
        'spa ce@example.com',
        'user@exa mple.com',
        'tab\there@example.com',
        'bell\u0007@example.com',
        `${'a'.repeat(243)}@example.com`, // 255 characters: one over the limit
      ];
      for (const email of invalid) {
        expectBadInput(await register(t.gql, { email }), 'email');
        expect(await usersWithEmail(email.trim().toLowerCase())).toBe(0);
      }
    });

    it('may be registered once: EMAIL_TAKEN for the same address, in any case', async () => {
      const first = await registerUser(t.gql, { password: 'first password' });
      for (const email of [first.user.email, first.user.email.toUpperCase(), ` ${first.user.email} `]) {
        const again = await register(t.gql, { email, password: 'second password' });
        expect(again.errors?.[0]?.extensions).toEqual({ code: 'EMAIL_TAKEN', field: 'email' });
        expect(again.data ?? null).toBeNull();
      }
      expect(await usersWithEmail(first.user.email)).toBe(1);
      expect((await loginUser(t.gql, first.user.email, 'first password')).data?.login.user.id).toBe(first.user.id);
      expect(errorCode(await loginUser(t.gql, first.user.email, 'second password'))).toBe('INVALID_CREDENTIALS');
    });

    it('keeps addresses that differ only by an accent apart (no accent-blind collation)', async () => {
      const tag = randomUUID().slice(0, 8);
      const accented = await registerUser(t.gql, { email: `josé-${tag}@example.com`, password: 'accented password' });
      const plain = await registerUser(t.gql, { email: `jose-${tag}@example.com`, password: 'plain password' });
      expect(plain.user.id).not.toBe(accented.user.id);
      expect(errorCode(await loginUser(t.gql, `jose-${tag}@example.com`, 'accented password'))).toBe(
        'INVALID_CREDENTIALS',
      );
      const login = await loginUser(t.gql, `josé-${tag}@example.com`, 'accented password');
      expect(login.data?.login.user.id).toBe(accented.user.id);
    });

    it('decides a race of two registrations for one address: one account, the other gets EMAIL_TAKEN', async () => {
      for (let round = 0; round < 5; round++) {
        const email = uniqueEmail('race');
        const passwords = ['password of one', 'password of two'];
        const [one, two] = await Promise.all([
          register(t.gql, { email, password: passwords[0] }),
          register(t.gql, { email: email.toUpperCase(), password: passwords[1] }),
        ]);
        const results = [one, two] as GraphQLResponse<{ register: Payload }>[];
        const winners = results.filter((r) => r.data?.register);
        const losers = results.filter((r) => !r.data?.register);
        expect(winners).toHaveLength(1);
        expect(losers).toHaveLength(1);
        expect(losers[0]?.errors?.[0]?.extensions).toEqual({ code: 'EMAIL_TAKEN', field: 'email' });
        expect(await usersWithEmail(email)).toBe(1);

        const winner = results.indexOf(winners[0] as GraphQLResponse<{ register: Payload }>);
        const login = await loginUser(t.gql, email, passwords[winner] as string);
        expect(login.data?.login.user.id).toBe(winners[0]?.data?.register.user.id);
      }
    });
  });

  describe('password', () => {
    it('is refused under 8 bytes of UTF-8 with BAD_USER_INPUT on password, counting bytes not characters', async () => {
      for (const password of ['abcdefg', 'ééé', 'éééa', '']) {
        expect(bytes(password)).toBeLessThan(8);
        const email = uniqueEmail('short');
        expectBadInput(await register(t.gql, { email, password }), 'password');
        expect(await usersWithEmail(email)).toBe(0);
      }
    });

    it('is accepted from 8 to 72 bytes of UTF-8, and signs in with exactly that password', async () => {
      const accepted = ['abcdefgh', 'éééé', 'a'.repeat(72), 'é'.repeat(36), `${'a'.repeat(68)}😀`];
      for (const password of accepted) {
        expect(bytes(password)).toBeGreaterThanOrEqual(8);
        expect(bytes(password)).toBeLessThanOrEqual(72);
        const registered = await registerUser(t.gql, { password });
        const login = await loginUser(t.gql, registered.user.email, password);
        expect(login.errors).toBeUndefined();
        expect(login.data?.login.user.id).toBe(registered.user.id);
      }
    });

    it('is refused over 72 bytes of UTF-8 rather than truncated, even when it has fewer characters', async () => {
      // 73 ASCII bytes; 37 × 'é' = 74 bytes in 37 characters; 71 + 'é' = 73 bytes in 72 characters.
      for (const password of ['a'.repeat(73), 'é'.repeat(37), `${'a'.repeat(71)}é`, 'x'.repeat(1000)]) {
        expect(bytes(password)).toBeGreaterThan(72);
        const email = uniqueEmail('long');
        expectBadInput(await register(t.gql, { email, password }), 'password');
        expect(await usersWithEmail(email)).toBe(0);
      }
    });

    it('of 72 bytes signs in only with all 72 of them', async () => {
      const password = 'é'.repeat(36);
      const user = await registerUser(t.gql, { password });
      // Differs only in the 72nd byte ('è' is C3 A8, 'é' is C3 A9), or is a prefix.
      for (const wrong of [`${'é'.repeat(35)}è`, 'é'.repeat(35), `${'é'.repeat(35)}e`]) {
        expect(errorCode(await loginUser(t.gql, user.user.email, wrong))).toBe('INVALID_CREDENTIALS');
      }
      // bcrypt would read only the first 72 bytes of a longer one and let it in: it is refused instead.
      expectBadInput(await loginUser(t.gql, user.user.email, `${password}x`), 'password');
      expect((await loginUser(t.gql, user.user.email, password)).data?.login.user.id).toBe(user.user.id);
    });

    it('is stored only as a bcrypt hash', async () => {
      const password = 'a secret worth hashing';
      const user = await registerUser(t.gql, { password });
      const row = await userRow(user.user.email);
      const hash = row?.passwordHash as string;
      expect(hash).toMatch(/^\$2[aby]\$04\$[./A-Za-z0-9]{53}$/);
      expect(hash).not.toContain(password);
      expect(await bcrypt.compare(password, hash)).toBe(true);
      expect(JSON.stringify(row)).not.toContain(password);
    });
  });

  describe('displayName', () => {
    it('is accepted up to 100 code points, whatever their UTF-16 length', async () => {
      const displayName = '😀'.repeat(100);
      expect(displayName.length).toBe(200);
      const user = await registerUser(t.gql, { displayName });
      expect(user.user.displayName).toBe(displayName);
      expect((await userRow(user.user.email))?.displayName).toBe(displayName);
      const me = await t.gql('{ me { displayName } }', {}, { token: user.accessToken });
      expect(me.data).toEqual({ me: { displayName } });
    });

    it('is refused over 100 code points with BAD_USER_INPUT on displayName', async () => {
      for (const displayName of ['😀'.repeat(101), 'a'.repeat(101)]) {
        const email = uniqueEmail('name');
        expectBadInput(await register(t.gql, { email, displayName }), 'displayName');
        expect(await usersWithEmail(email)).toBe(0);
      }
    });

    it('is stored as null when empty or absent', async () => {
      for (const displayName of ['', null, undefined]) {
        const user = await registerUser(t.gql, { displayName });
        expect(user.user.displayName).toBeNull();
        expect((await userRow(user.user.email))?.displayName).toBeNull();
      }
    });
  });

  describe('Unicode (API.md "Input integrity")', () => {
    const tag = () => randomUUID().slice(0, 8);
    const UPDATE_PROFILE = 'mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { displayName } }';

    it('makes café@ in NFC and in NFD one account, stored in NFC', async () => {
      const local = `café-${tag()}`;
      const nfc = `${local}@example.com`.normalize('NFC');
      const nfd = nfc.normalize('NFD');
      expect(nfd).not.toBe(nfc);
      const first = await registerUser(t.gql, { email: nfd, password: 'password of café' });
      expect(first.user.email).toBe(nfc);
      expect((await userRow(nfc))?.email).toBe(nfc);
      const again = await register(t.gql, { email: nfc, password: 'another password' });
      expect(again.errors?.[0]?.extensions).toEqual({ code: 'EMAIL_TAKEN', field: 'email' });
      expect(await usersWithEmail(nfc)).toBe(1);
      expect(await usersWithEmail(nfd)).toBe(0);
      for (const email of [nfc, nfd, nfd.toUpperCase()]) {
        expect((await loginUser(t.gql, email, 'password of café')).data?.login.user.id).toBe(first.user.id);
      }
    });

    it('refuses invisible, format and compatibility characters in an email anywhere, ends included', async () => {
      const local = `ada-${tag()}`;
      const plain = `${local}@example.com`;
      await registerUser(t.gql, { email: plain });
      const refused = [
        `ada\u200b-${tag()}@example.com`, // zero-width space
        `${local}\u200b@example.com`, // ...that would look like the account above
        `\ufeff${local}@example.com`, // U+FEFF is not White_Space: trim() would silently drop it
        `${local}@example.com\ufeff`,
        `${local}@exa\u00admple.com`, // soft hyphen
        `${local}\u2060@example.com`, // word joiner
        `\u202e${local}@example.com`, // right-to-left override
        `${local}\u200d@example.com`, // zero-width joiner
        `${local}\u180e@example.com`, // Mongolian vowel separator
        `\uff41\uff44\uff41-${tag()}@example.com`, // fullwidth ａｄａ
        `${local}\uff20example.com`, // fullwidth @
        `${local}@example\uff0ecom`, // fullwidth full stop
        `\ufb01-${tag()}@example.com`, // the ﬁ ligature
        `${local}@example.com\u0000`,
      ];
      for (const email of refused) {
        expectBadInput(await register(t.gql, { email }), 'email');
        expectBadInput(await loginUser(t.gql, email, 'correct horse battery'), 'email');
      }
      expect(await usersWithEmail(plain)).toBe(1);
      // White_Space around it (NBSP, ideographic space, line separator) is trimmed: the same account.
      const spaced = await loginUser(t.gql, `\u00a0\u3000${plain}\u2028`, 'correct horse battery');
      expect(spaced.data?.login.user.email).toBe(plain);
    });

    it('never normalises a password, and refuses one with a lone surrogate instead of hashing U+FFFD', async () => {
      for (const password of ['password\ud800', 'password\udbff', '\udc00password', 'password\udc00\ud800']) {
        const email = uniqueEmail('surrogate');
        expectBadInput(await register(t.gql, { email, password }), 'password');
        expect(await usersWithEmail(email)).toBe(0);
      }
      const user = await registerUser(t.gql, { password: 'password\ud83d\ude00' }); // a proper pair: 😀
      expect((await loginUser(t.gql, user.user.email, 'password😀')).data?.login.user.id).toBe(user.user.id);
      for (const wrong of ['password\ud83d', 'password\ude00', 'password\ud83d\ud83d']) {
        expectBadInput(await loginUser(t.gql, user.user.email, wrong), 'password');
      }
      // What a lone surrogate used to become is just another wrong password.
      expect(errorCode(await loginUser(t.gql, user.user.email, 'password\ufffd'))).toBe('INVALID_CREDENTIALS');
      // NFC and NFD passwords are different passwords.
      const nfd = 'cafe\u0301-password';
      const accented = await registerUser(t.gql, { password: nfd });
      expect(errorCode(await loginUser(t.gql, accented.user.email, nfd.normalize('NFC')))).toBe('INVALID_CREDENTIALS');
      expect((await loginUser(t.gql, accented.user.email, nfd)).data?.login.user.id).toBe(accented.user.id);
    });

    it('refuses bidi controls, control characters and invisible-only display names; keeps joiners and variation selectors', async () => {
      const user = await registerUser(t.gql);
      const refused = [
        'evil\u202etxt.exe',
        '\u061cname',
        'a\u200eb',
        'a\u200fb',
        '\u202aname',
        '\u202bname',
        '\u202cname',
        '\u202dname',
        '\u2066a\u2069',
        '\u2067a',
        '\u2068a',
        'tab\tinside',
        'bell\u0007',
        'nul\u0000',
        '\u200b', // only a zero-width space: nothing visible
        '\u200b\u200d\ufe0f',
        ' \u2060 ',
      ];
      for (const displayName of refused) {
        const email = uniqueEmail('bidi');
        expectBadInput(await register(t.gql, { email, displayName }), 'displayName');
        expect(await usersWithEmail(email)).toBe(0);
        expectBadInput(
          await t.gql(UPDATE_PROFILE, { input: { displayName } }, { token: user.accessToken }),
          'displayName',
        );
      }
      const kept = ['👩\u200d💻 Ada', '❤\ufe0f', 'क्\u200dष', 'Zoë'];
      for (const displayName of kept) {
        const registered = await registerUser(t.gql, { displayName });
        expect(registered.user.displayName).toBe(displayName);
      }
      // NFC first, then at most 100 code points: 100 × (e + combining acute) is 100 × é.
      const decomposed = 'e\u0301'.repeat(100);
      const composed = await registerUser(t.gql, { displayName: decomposed });
      expect(composed.user.displayName).toBe('é'.repeat(100));
      expect((await userRow(composed.user.email))?.displayName).toBe('é'.repeat(100));
      // Only whitespace clears the name.
      await t.gql(UPDATE_PROFILE, { input: { displayName: 'Ada' } }, { token: user.accessToken });
      const cleared = await t.gql(UPDATE_PROFILE, { input: { displayName: ' \u3000 ' } }, { token: user.accessToken });
      expect(cleared.data).toEqual({ updateProfile: { displayName: null } });
    });
  });

  describe('login', () => {
    it('answers INVALID_CREDENTIALS alike for an unknown email and a wrong password, and audits both', async () => {
      const user = await registerUser(t.gql);
      const probe = (label: string) => ({ 'user-agent': `probe-${label}-${randomUUID()}` });
      const wrongHeaders = probe('wrong');
      const unknownHeaders = probe('unknown');
      const wrong = await loginUser(t.gql, user.user.email, 'not the password', wrongHeaders);
      const unknown = await loginUser(t.gql, uniqueEmail('nobody'), 'not the password', unknownHeaders);

      for (const response of [wrong, unknown]) {
        expect(response.errors).toHaveLength(1);
        expect(response.errors?.[0]?.extensions).toEqual({ code: 'INVALID_CREDENTIALS' });
        expect(response.data ?? null).toBeNull();
      }
      expect(wrong.errors?.[0]?.message).toBe(unknown.errors?.[0]?.message);

      const failures = async (userAgent: string) =>
        (await t.app.orm.em.fork().find(AuditEvent, { type: 'LOGIN_FAILED', userAgent })).map((row) => ({
          userId: row.userId,
          sessionId: row.sessionId,
          ipAddress: row.ipAddress,
          detail: row.detail ? JSON.parse(row.detail) : null,
        }));
      expect(await failures(wrongHeaders['user-agent'])).toEqual([
        { userId: user.user.id, sessionId: null, ipAddress: '127.0.0.1', detail: { reason: 'WRONG_PASSWORD' } },
      ]);
      expect(await failures(unknownHeaders['user-agent'])).toEqual([
        { userId: null, sessionId: null, ipAddress: '127.0.0.1', detail: { reason: 'UNKNOWN_EMAIL' } },
      ]);
    });
  });
});
