// The operator's CLI (`npm run admin -- …`): help, list-users, revoke-sessions and the client commands through the shared bus (a running
// instance refuses the tokens at once), and a password typed on a terminal that is never echoed. Real processes.
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent, Client } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { extensionsOf, loginUser, me, registerUser } from './support/graphql.ts';
import { runAdminCli } from './support/processes.ts';
import { type RunningService, serviceAvailable, servicesRequired, startRedis } from './support/services.ts';
import { eventually } from './support/subscriptions.ts';

const root = new URL('..', import.meta.url).pathname;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('admin CLI help', () => {
  it('lists its commands with --help, says more about one, and refuses an unknown one', async () => {
    const help = await runAdminCli(['--help'], {});
    expect(help.code).toBe(0);
    expect(help.out.split('\n').filter((line) => line.startsWith('  '))).toEqual([
      '  create-admin          make an account an admin, creating it when there is none',
      '  list-users            list accounts, oldest first',
      '  revoke-sessions       end every session of an account (reason REVOKED_BY_ADMIN)',
      '  disable-user          switch an account off: its sessions end, it cannot sign in or refresh',
      '  enable-user           switch a disabled account on again (it signs in anew)',
      '  create-client         register an app (PUBLIC) or a service (CONFIDENTIAL, with a secret)',
      '  rotate-client-secret  give a CONFIDENTIAL client a new secret; the old one and its tokens stop working',
      '  disable-client        switch a client off: its sessions end, its tokens and sign-ins are refused',
      '  enable-client         switch a disabled client on again',
    ]);
    const one = await runAdminCli(['list-users', '--help'], {});
    expect(one.code).toBe(0);
    expect(one.out.split('\n')[0]).toBe('usage: npm run admin -- list-users [--search TEXT] [--limit N]');
    expect(await runAdminCli(['help', 'revoke-sessions'], {})).toMatchObject({
      code: 0,
      out: expect.stringMatching(/^usage: npm run admin -- revoke-sessions EMAIL\|ID\n/),
    });
    const unknown = await runAdminCli(['delete-user', 'x@example.com'], {});
    expect(unknown.code).toBe(2);
    expect(unknown.err.split('\n')[0]).toBe('unknown command "delete-user"');
  });
});

describe.each(dialects())('admin CLI on %s', (dialect) => {
  let t: TestApp;
  let redis: RunningService | undefined;
  let env: Record<string, string>;
  const marker = randomUUID().slice(0, 8);
  const em = () => t.app.orm.em.fork() as Em;

  beforeAll(async () => {
    if (serviceAvailable('redis-server') || servicesRequired) redis = await startRedis();
    t = await startTestApp({ dialect, env: redis ? { REDIS_URL: redis.url } : {} });
    env = { DATABASE_URL: t.databaseUrl, DATA_DIR: t.dir, ...(redis ? { REDIS_URL: redis.url } : {}) };
    // The CLI signs nothing, but it builds the whole service: the same key as the running instance.
    for (const name of ['a', 'b', 'c']) await registerUser(t.gql, { email: `${name}-${marker}@example.com` });
  });
  afterAll(async () => {
    await t?.close();
    await redis?.stop();
  });

  it('lists accounts oldest first, filtered by --search and cut by --limit', async () => {
    const all = await runAdminCli(['list-users', '--search', marker], env);
    expect(all.code).toBe(0);
    const lines = all.out.split('\n');
    expect(lines[0]).toMatch(/^ID +EMAIL +ROLES +VERIFIED +CREATED$/);
    expect(lines.slice(1, -1).map((line) => line.split(/ {2,}/).slice(1, 4))).toEqual([
      [`a-${marker}@example.com`, 'USER', 'no'],
      [`b-${marker}@example.com`, 'USER', 'no'],
      [`c-${marker}@example.com`, 'USER', 'no'],
    ]);
    expect(lines.at(-1)).toBe('3 of 3 users');
    const cut = await runAdminCli(['list-users', '--search', marker, '--limit', '2'], env);
    expect(cut.out.split('\n').at(-1)).toBe('2 of 3 users (use --search or --limit)');
    expect(await runAdminCli(['list-users', '--limit', '0'], env)).toMatchObject({
      code: 1,
      err: '--limit: expected a whole number from 1 to 100',
    });
  });

  it('revokes every session of an account by email or id; a running instance refuses its tokens at once', async () => {
    const email = `revoke-${marker}@example.com`;
    const registered = await registerUser(t.gql, { email });
    const second = (await loginUser(t.gql, email, registered.password)).data?.login;
    expect((await me(t.gql, registered.accessToken)).data?.me).toBeTruthy();

    const revoked = await runAdminCli(['revoke-sessions', email.toUpperCase()], env);
    expect(revoked).toMatchObject({ code: 0, out: `revoked 2 sessions of ${email}` });
    if (redis) {
      // Through Redis, at once: no waiting for the access token to expire.
      for (const token of [registered.accessToken, second?.accessToken as string]) {
        expect(extensionsOf(await me(t.gql, token))).toMatchObject({
          code: 'UNAUTHENTICATED',
          reason: 'SESSION_REVOKED',
        });
      }
    }
    const refreshed = await t.gql('mutation($t: String!) { refresh(refreshToken: $t) { accessToken } }', {
      t: registered.refreshToken,
    });
    expect(extensionsOf(refreshed)?.code).toBe('UNAUTHENTICATED');

    const again = (await loginUser(t.gql, email, registered.password)).data?.login.accessToken as string;
    const id = (await me(t.gql, again)).data?.me?.id as string;
    expect(id).toBeTypeOf('string');
    expect(await runAdminCli(['revoke-sessions', id], env)).toMatchObject({
      code: 0,
      out: `revoked 1 session of ${email}`,
    });
    expect(await runAdminCli(['revoke-sessions', `nobody-${marker}@example.com`], env)).toMatchObject({
      code: 1,
      err: `no account nobody-${marker}@example.com`,
    });
  });

  it('creates a CONFIDENTIAL client, printing its secret once (stdout) and storing only its hash', async () => {
    const id = `cli-svc-${marker}`;
    const created = await runAdminCli(
      [
        'create-client',
        '--id',
        id,
        '--name',
        'CLI service',
        '--type',
        'CONFIDENTIAL',
        '--scope',
        'users:read',
        '--scope',
        'storage.read',
        '--audience',
        'https://svc.test',
      ],
      env,
    );
    expect(created.code).toBe(0);
    const [done, idLine, secretLine, ...rest] = created.out.split('\n');
    expect([done, idLine, rest]).toEqual([`created CONFIDENTIAL client ${id}`, `client_id: ${id}`, []]);
    const secret = /^client_secret: ([A-Za-z0-9_-]{43})$/.exec(secretLine ?? '')?.[1] as string;
    expect(secret).toBeTypeOf('string');
    expect(created.err).not.toContain(secret);
    const row = await em().findOneOrFail(Client, { id });
    expect([row.type, row.secretHash, row.scopes, row.audiences]).toEqual([
      'CONFIDENTIAL',
      sha256(secret),
      '["storage.read","users:read"]',
      '["https://svc.test"]',
    ]);
    const audited = await em().find(AuditEvent, { type: 'CLIENT_CREATED', detail: { $like: `%${id}%` } });
    expect(audited.map((event) => JSON.parse(event.detail ?? '{}'))).toEqual([
      { by: 'cli', clientId: id, type: 'CONFIDENTIAL' },
    ]);

    const publicId = `cli-app-${marker}`;
    expect(
      await runAdminCli(['create-client', '--id', publicId, '--name', 'CLI app', '--type', 'public'], env),
    ).toMatchObject({ code: 0, out: `created PUBLIC client ${publicId}\nclient_id: ${publicId}` });
    expect((await em().findOneOrFail(Client, { id: publicId })).secretHash).toBeNull();

    // Refusals name the option at fault; nothing is created.
    const refusals: [string[], string][] = [
      [['--id', id, '--name', 'Again', '--type', 'PUBLIC'], '--id: A client with this id already exists'],
      [['--id', `bad-${marker}`, '--name', 'Bad', '--type', 'SERVICE'], '--type: expected PUBLIC or CONFIDENTIAL'],
      [['--id', `bad-${marker}`, '--name', 'Bad', '--type', 'PUBLIC', '--scope', 'users:read'], '--scope: '],
    ];
    for (const [args, message] of refusals) {
      const refused = await runAdminCli(['create-client', ...args], env);
      expect(refused.code, args.join(' ')).toBe(1);
      expect(refused.err.startsWith(message), refused.err).toBe(true);
    }
    expect((await runAdminCli(['create-client', '--id', `bad-${marker}`], env)).err).toMatch(
      /^--id, --name and --type are required\n/,
    );
    expect(await em().count(Client, { id: `bad-${marker}` })).toBe(0);
  }, 120_000);

  it('rotates a secret and disables and enables a client; a running instance sharing Redis hears it at once', async () => {
    const id = `cli-rotated-${marker}`;
    const first = await runAdminCli(['create-client', '--id', id, '--name', 'Rotated', '--type', 'CONFIDENTIAL'], env);
    const firstSecret = first.out.split('client_secret: ')[1] as string;
    const rotated = await runAdminCli(['rotate-client-secret', '--id', id], env);
    expect(rotated.code).toBe(0);
    const secret = /\nclient_secret: ([A-Za-z0-9_-]{43})$/.exec(rotated.out)?.[1] as string;
    expect(secret).toBeTypeOf('string');
    expect(secret).not.toBe(firstSecret);
    const row = await em().findOneOrFail(Client, { id });
    expect([row.secretHash, row.tokensRevokedReason]).toEqual([sha256(secret), 'CLIENT_SECRET_ROTATED']);
    expect(await runAdminCli(['rotate-client-secret', '--id', `nobody-${marker}`], env)).toMatchObject({
      code: 1,
      err: 'no such client',
    });

    const appId = `cli-doomed-${marker}`;
    await runAdminCli(['create-client', '--id', appId, '--name', 'Doomed', '--type', 'PUBLIC'], env);
    const user = await registerUser(t.gql);
    const login = (clientId: string) =>
      t.gql<{ login: { accessToken: string } }>(
        'mutation($input: LoginInput!) { login(input: $input) { accessToken } }',
        { input: { email: user.user.email, password: user.password, clientId } },
      );
    let token: string | undefined;
    if (redis) {
      // The running instance heard of the new client through Redis.
      await eventually(async () => {
        token = (await login(appId)).data?.login.accessToken;
        return token !== undefined;
      });
    }
    expect(await runAdminCli(['disable-client', '--id', appId], env)).toMatchObject({
      code: 0,
      out: `disabled ${appId}: its sessions are ended, its tokens and sign-ins refused until enable-client`,
    });
    expect((await em().findOneOrFail(Client, { id: appId })).disabled).toBe(true);
    if (redis && token) {
      expect(extensionsOf(await me(t.gql, token))).toEqual({ code: 'UNAUTHENTICATED', reason: 'SESSION_REVOKED' });
      expect(extensionsOf(await login(appId))).toEqual({ code: 'BAD_USER_INPUT', field: 'clientId' });
    }
    expect(await runAdminCli(['disable-client', '--id', 'default'], env)).toMatchObject({
      code: 1,
      err: '--id: The default client cannot be disabled: every sign-in without a clientId uses it',
    });
    expect(await runAdminCli(['enable-client', '--id', appId], env)).toMatchObject({ code: 0 });
    expect((await em().findOneOrFail(Client, { id: appId })).disabled).toBe(false);
    if (redis) await eventually(async () => (await login(appId)).data?.login !== undefined);
  }, 120_000);

  it('asks a new admin’s password on a terminal twice without echoing it', async () => {
    const email = `tty-${marker}@example.com`;
    const password = 'typed-on-a-tty-Q7';
    // `script` gives the CLI a real pseudo-terminal; what it echoes comes back in the transcript.
    const command = `${root}node_modules/.bin/node ${root}src/admin/cli.ts create-admin ${email}`;
    const child = spawn('script', ['-qefc', command, '/dev/null'], {
      env: { PATH: process.env.PATH, LOG_LEVEL: 'warn', BCRYPT_COST: '4', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let transcript = '';
    child.stdout.on('data', (chunk: Buffer) => {
      transcript += chunk.toString();
    });
    const waitFor = (text: string) =>
      new Promise<void>((resolve, reject) => {
        const timer = setInterval(() => {
          if (transcript.includes(text)) {
            clearInterval(timer);
            clearTimeout(limit);
            resolve();
          }
        }, 20);
        const limit = setTimeout(() => {
          clearInterval(timer);
          reject(new Error(`no "${text}" in: ${transcript}`));
        }, 20_000);
      });
    await waitFor(`Password for the new admin ${email}: `);
    child.stdin.write(`${password}\r`);
    await waitFor('Repeat the password: ');
    child.stdin.write(`${password}\r`);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    expect(transcript).toContain(`created admin ${email}`);
    expect(transcript).not.toContain(password);
    const login = await loginUser(t.gql, email, password);
    expect(login.data?.login.accessToken).toBeTypeOf('string');
  });
});
