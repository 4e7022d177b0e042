// The client address behind trusted proxies: X-Forwarded-For counted from the right (TRUST_PROXY=N), never a
// client-written entry, never a value that is not an IP address; IPv6 clients share a limit per /64.
import { afterAll, describe, expect, it } from 'vitest';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { errorCode, loginUser, type Payload, registerUser, uniqueEmail } from './support/graphql.ts';

const apps: TestApp[] = [];
async function app(env: Record<string, string>, dialect: 'sqlite' | 'mysql' = 'sqlite') {
  const t = await startTestApp({ env, dialect });
  apps.push(t);
  return t;
}
afterAll(async () => {
  await Promise.all(apps.splice(0).map((t) => t.close()));
});

const from = (forwardedFor: string) => ({ 'x-forwarded-for': forwardedFor });

/** The address the server saw: the new session's ipAddress, through the public API. */
async function seenAs(t: TestApp, user: { email: string; password: string }, forwardedFor?: string) {
  const response = await loginUser(t.gql, user.email, user.password, forwardedFor ? from(forwardedFor) : undefined);
  const payload = response.data?.login as Payload | undefined;
  if (!payload) throw new Error(`login failed: ${JSON.stringify(response.errors)}`);
  return payload.session.ipAddress;
}

async function account(t: TestApp) {
  const registered = await registerUser(t.gql);
  return { email: registered.user.email, password: registered.password };
}

describe('TRUST_PROXY', () => {
  it('takes the right-most entry with one trusted proxy (true), whatever the client wrote to its left', async () => {
    const t = await app({ TRUST_PROXY: 'true' });
    const user = await account(t);
    expect(await seenAs(t, user, '6.6.6.6, 203.0.113.9')).toBe('203.0.113.9');
    expect(await seenAs(t, user, '203.0.113.10')).toBe('203.0.113.10');
    // Two headers are one list, in order: the proxy's own line is the last.
    const response = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: [
        ['content-type', 'application/json'],
        ['x-forwarded-for', '6.6.6.6'],
        ['x-forwarded-for', '203.0.113.11'],
      ],
      body: JSON.stringify({
        query: 'mutation($input: LoginInput!) { login(input: $input) { session { ipAddress } } }',
        variables: { input: user },
      }),
    });
    expect((await response.json()).data.login.session.ipAddress).toBe('203.0.113.11');
  });

  it('takes the N-th entry from the right with N proxies, and the left-most one when there are fewer', async () => {
    const t = await app({ TRUST_PROXY: '2' });
    const user = await account(t);
    expect(await seenAs(t, user, '6.6.6.6, 198.51.100.4, 10.0.0.1')).toBe('198.51.100.4');
    expect(await seenAs(t, user, '198.51.100.5, 10.0.0.1')).toBe('198.51.100.5');
    expect(await seenAs(t, user, '198.51.100.6')).toBe('198.51.100.6');
  });

  it('ignores an entry that is not an IP address in favour of the socket address', async () => {
    const t = await app({ TRUST_PROXY: '1' });
    const user = await account(t);
    expect(await seenAs(t, user, '198.51.100.1, not-an-ip')).toBe('127.0.0.1');
    expect(await seenAs(t, user, '198.51.100.1, 198.51.100.2:443')).toBe('127.0.0.1');
    expect(await seenAs(t, user, '198.51.100.1, <script>')).toBe('127.0.0.1');
    expect(await seenAs(t, user, ' , ')).toBe('127.0.0.1');
  });

  it('writes one address one way: IPv4-mapped IPv6 in any spelling as IPv4, IPv6 compressed and lower-cased', async () => {
    const t = await app({ TRUST_PROXY: '1' });
    const user = await account(t);
    for (const spelling of ['::ffff:203.0.113.9', '0:0:0:0:0:ffff:203.0.113.9', '::FFFF:CB00:7109']) {
      expect(await seenAs(t, user, spelling)).toBe('203.0.113.9');
    }
    expect(await seenAs(t, user, '2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
  });

  it('ignores X-Forwarded-For without TRUST_PROXY', async () => {
    const t = await app({});
    const user = await account(t);
    expect(await seenAs(t, user, '203.0.113.9')).toBe('127.0.0.1');
  });

  it('keeps the per-IP login limit on the proxy-vouched address, however the client varies the left entries', async () => {
    const t = await app({ TRUST_PROXY: 'true', RATE_LIMIT_LOGIN_IP: '3/15m' });
    const user = await account(t);
    for (const spoofed of ['1.1.1.1', '2.2.2.2', '3.3.3.3']) {
      const response = await loginUser(t.gql, uniqueEmail(), 'wrong password', from(`${spoofed}, 203.0.113.7`));
      expect(errorCode(response)).toBe('INVALID_CREDENTIALS');
    }
    const refused = await loginUser(t.gql, user.email, user.password, from('4.4.4.4, 203.0.113.7'));
    expect(errorCode(refused)).toBe('RATE_LIMITED');
    expect(await seenAs(t, user, '203.0.113.8')).toBe('203.0.113.8');
  });

  it('counts IPv6 clients per /64 for the login limit, and records the full address', async () => {
    const t = await app({ TRUST_PROXY: 'true', RATE_LIMIT_LOGIN_IP: '3/15m' });
    const user = await account(t);
    for (const address of ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff:ffff:ffff:ffff']) {
      expect(errorCode(await loginUser(t.gql, uniqueEmail(), 'wrong password', from(address)))).toBe(
        'INVALID_CREDENTIALS',
      );
    }
    // Another address in the same /64, written differently: the same client.
    const refused = await loginUser(t.gql, user.email, user.password, from('2001:DB8:1:2:0:0:0:99'));
    expect(errorCode(refused)).toBe('RATE_LIMITED');
    // The next /64 is another client, and the session keeps its full address.
    expect(await seenAs(t, user, '2001:db8:1:3::5')).toBe('2001:db8:1:3::5');
  });

  describe.each(dialects())('audit trail on %s', (dialect) => {
    it('records the proxy-vouched address, not the client-written one', async () => {
      const t = await app({ TRUST_PROXY: '1' }, dialect);
      const registered = await registerUser(t.gql);
      const wrong = await loginUser(t.gql, registered.user.email, 'wrong password', from('6.6.6.6, 2001:db8::7'));
      expect(errorCode(wrong)).toBe('INVALID_CREDENTIALS');
      const events = await t.gql<{ me: { auditEvents: { edges: { node: { type: string; ipAddress: string } }[] } } }>(
        'query { me { auditEvents(first: 20) { edges { node { type ipAddress } } } } }',
        {},
        { token: registered.accessToken },
      );
      const failed = events.data?.me.auditEvents.edges.map((edge) => edge.node).find((n) => n.type === 'LOGIN_FAILED');
      expect(failed).toEqual({ type: 'LOGIN_FAILED', ipAddress: '2001:db8::7' });
    });
  });
});
