// `npm run admin -- <command>`: the operator's tools run in the service's environment (create-admin, list-users,
// revoke-sessions, disable-user, enable-user, and clients: create-client, rotate-client-secret, disable-client,
// enable-client), with --help. Passwords are read from a terminal without echo, or from standard input when piped.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { text } from 'node:stream/consumers';
import { parseArgs } from 'node:util';
import { type App, createApp } from '../app.ts';
import { audit } from '../audit/audit.ts';
import { createPasswordHasher } from '../auth/passwords.ts';
import { normalizeEmail, validatePassword } from '../auth/validate.ts';
import { createCall } from '../call.ts';
import { createClient, rotateClientSecret, setClientDisabled } from '../clients/admin.ts';
import { type Config, ConfigError, configErrorLines, loadConfig } from '../config.ts';
import { CLIENT_TYPES, type ClientType, User, type UserRow } from '../db/entities.ts';
import { migrate } from '../db/migrate.ts';
import { createOrm, type Em } from '../db/orm.ts';
import { AuthError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { rolesOf } from '../sessions/sessions.ts';
import { changeUserDisabled, listUsers, MAX_PAGE_SIZE } from './users.ts';

const META = { ipAddress: null, userAgent: 'admin-cli' };

interface Command {
  readonly usage: string;
  readonly summary: string;
  /** Longer help: arguments, options, what happens. */
  readonly details: string;
  run(args: string[]): Promise<string>;
}

function environment(): Config {
  if (existsSync('.env')) process.loadEnvFile('.env');
  return loadConfig(process.env, (path) => readFileSync(path, 'utf8'));
}

/** Reads a line from the terminal with echo off (raw mode), or all of standard input when it is not a terminal. */
async function readPassword(prompt: string): Promise<string> {
  const input = process.stdin;
  if (!input.isTTY) return (await text(input)).replace(/\r?\n$/, '');
  process.stderr.write(prompt);
  input.setRawMode(true);
  input.resume();
  input.setEncoding('utf8');
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = '';
      const onData = (chunk: string) => {
        for (const char of chunk) {
          if (char === '\r' || char === '\n') {
            input.off('data', onData);
            process.stderr.write('\n');
            return resolve(typed);
          }
          if (char === '\u0003') {
            input.off('data', onData);
            process.stderr.write('\n');
            return reject(new AuthError('BAD_USER_INPUT', 'cancelled'));
          }
          if (char === '\u007f' || char === '\b') typed = [...typed].slice(0, -1).join('');
          else typed += char;
        }
      };
      input.on('data', onData);
    });
  } finally {
    input.setRawMode(false);
    input.pause();
  }
}

async function createAdmin(args: string[]): Promise<string> {
  const [emailInput] = args;
  if (!emailInput) throw new AuthError('BAD_USER_INPUT', `missing EMAIL\n${COMMANDS['create-admin'].usage}`);
  const config = environment();
  const email = normalizeEmail(emailInput);
  const orm = await createOrm(config.database);
  try {
    await migrate(orm);
    const em = orm.em.fork() as Em;
    const now = new Date();
    const existing = await em.findOne(User, { email });
    if (existing) {
      const roles = rolesOf(existing);
      // A disabled admin stays disabled: switching it on is enable-user's decision, not a side effect of this one.
      const note = existing.disabled ? ' (the account is disabled: enable-user lets it sign in)' : '';
      if (roles.includes('ADMIN')) return `${email} is already an admin${note}`;
      existing.roles = [...roles, 'ADMIN'].join(',');
      existing.updatedAt = now;
      audit(em, META, { type: 'ROLES_CHANGED', userId: existing.id, detail: { by: 'cli', to: existing.roles } }, now);
      await em.flush();
      return `${email} is now an admin (it takes effect at the next sign-in or refresh)${note}`;
    }
    let password = validatePassword(await readPassword(`Password for the new admin ${email}: `));
    if (process.stdin.isTTY && (await readPassword('Repeat the password: ')) !== password) {
      throw new AuthError('BAD_USER_INPUT', 'the passwords differ; nothing was created');
    }
    const hasher = await createPasswordHasher(config.bcryptCost);
    const user = em.create(User, {
      id: randomUUID(),
      email,
      passwordHash: await hasher.hash(password),
      emailVerified: false,
      displayName: null,
      roles: 'USER,ADMIN',
      createdAt: now,
      updatedAt: now,
    });
    password = '';
    audit(em, META, { type: 'USER_REGISTERED', userId: user.id, detail: { by: 'cli' } }, now);
    audit(em, META, { type: 'ROLES_CHANGED', userId: user.id, detail: { by: 'cli', to: 'USER,ADMIN' } }, now);
    await em.flush();
    return `created admin ${email}`;
  } finally {
    await orm.close();
  }
}

async function listUsersCommand(args: string[]): Promise<string> {
  const { values } = parseArgs({
    args,
    options: { search: { type: 'string' }, limit: { type: 'string', default: String(MAX_PAGE_SIZE) } },
  });
  const first = Number(values.limit);
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE_SIZE) {
    throw new AuthError('BAD_USER_INPUT', `--limit: expected a whole number from 1 to ${MAX_PAGE_SIZE}`);
  }
  const config = environment();
  const orm = await createOrm(config.database);
  try {
    await migrate(orm);
    const call = createCall(() => orm.em.fork() as Em, META, null);
    const page = await listUsers(undefined, call, { first, query: values.search ?? null });
    const rows = page.edges.map(({ node }) => [
      node.id,
      node.email,
      node.roles,
      node.emailVerified ? 'yes' : 'no',
      node.createdAt.toISOString(),
    ]);
    const table = [['ID', 'EMAIL', 'ROLES', 'VERIFIED', 'CREATED'], ...rows];
    const widths = table[0]?.map((_, column) => Math.max(...table.map((row) => (row[column] ?? '').length))) ?? [];
    const lines = table.map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    );
    const shown = `${rows.length} of ${page.totalCount} user${page.totalCount === 1 ? '' : 's'}`;
    return [...lines, page.pageInfo.hasNextPage ? `${shown} (use --search or --limit)` : shown].join('\n');
  } finally {
    await orm.close();
  }
}

/**
 * Runs `work` against the whole service, not listening: writes go through the same sessions and bus as the API's,
 * so every running instance (through Redis) hears them at once. Its start-up notes (the mail outbox…) are the
 * server's business: only errors reach the operator.
 */
async function withService(work: (app: App, em: Em) => Promise<string>): Promise<string> {
  const config = environment();
  const logger = createLogger({ logLevel: config.logLevel === 'silent' ? 'silent' : 'error' }, process.stderr);
  const app = await createApp(config, { logger });
  try {
    return await work(app, app.orm.em.fork() as Em);
  } finally {
    await app.close();
  }
}

/** Runs `work` (as withService does) on the account named by EMAIL or ID. */
async function withAccount(
  command: keyof typeof COMMANDS,
  args: string[],
  work: (app: App, em: Em, user: UserRow) => Promise<string>,
): Promise<string> {
  const [who] = args;
  if (!who) throw new AuthError('BAD_USER_INPUT', `missing EMAIL or ID\n${COMMANDS[command].usage}`);
  return withService(async (app, em) => {
    const user = who.includes('@')
      ? await em.findOne(User, { email: normalizeEmail(who) })
      : await em.findOne(User, { id: who });
    if (!user) throw new AuthError('NOT_FOUND', `no account ${who}`);
    return work(app, em, user);
  });
}

async function revokeSessions(args: string[]): Promise<string> {
  return withAccount('revoke-sessions', args, async (app, em, user) => {
    const count = await app.services.sessions.revoke(em, {
      userId: user.id,
      sessionIds: 'all',
      reason: 'REVOKED_BY_ADMIN',
      meta: META,
      extra: { type: 'USER_SESSIONS_REVOKED', userId: user.id, detail: { by: 'cli' } },
    });
    return `revoked ${count} session${count === 1 ? '' : 's'} of ${user.email}`;
  });
}

/** disable-user and enable-user: through the app's flow, so sessions end on every instance sharing Redis. */
async function setDisabled(args: string[], disabled: boolean): Promise<string> {
  return withAccount(disabled ? 'disable-user' : 'enable-user', args, async (app, em, user) => {
    if (user.disabled === disabled) return `${user.email} is already ${disabled ? 'disabled' : 'enabled'}`;
    await changeUserDisabled(app.services, { em, meta: META }, { userId: user.id, disabled }, 'cli');
    return disabled
      ? `disabled ${user.email}: its sessions are ended and it cannot sign in until enable-user`
      : `enabled ${user.email}: it can sign in again`;
  });
}

/** The option an input field of the client flows comes from, for error messages the operator can act on. */
const CLIENT_OPTIONS: Readonly<Record<string, string>> = {
  id: '--id',
  name: '--name',
  type: '--type',
  audiences: '--audience',
  redirectUris: '--redirect-uri',
  allowedOrigins: '--allowed-origin',
  scopes: '--scope',
};

/** Runs a client flow as the CLI (`by: cli` in the audit trail); a refused field is named by its option. */
async function asCli<T>(run: (call: { em: Em; meta: typeof META; by: 'cli' }) => Promise<T>, em: Em): Promise<T> {
  try {
    return await run({ em, meta: META, by: 'cli' });
  } catch (error) {
    const field = error instanceof AuthError ? error.details?.field : undefined;
    if (error instanceof AuthError && typeof field === 'string' && CLIENT_OPTIONS[field]) {
      throw new AuthError(error.code, `${CLIENT_OPTIONS[field]}: ${error.message}`);
    }
    if (error instanceof AuthError && error.code === 'NOT_FOUND') throw new AuthError('NOT_FOUND', 'no such client');
    throw error;
  }
}

const clientIdOf = (command: keyof typeof COMMANDS, args: string[]): string => {
  const { values } = parseArgs({ args, options: { id: { type: 'string' } } });
  if (!values.id) throw new AuthError('BAD_USER_INPUT', `missing --id\n${COMMANDS[command].usage}`);
  return values.id;
};

async function createClientCommand(args: string[]): Promise<string> {
  const { values } = parseArgs({
    args,
    options: {
      id: { type: 'string' },
      name: { type: 'string' },
      type: { type: 'string' },
      audience: { type: 'string', multiple: true },
      scope: { type: 'string', multiple: true },
      'redirect-uri': { type: 'string', multiple: true },
      'allowed-origin': { type: 'string', multiple: true },
    },
  });
  const { usage } = COMMANDS['create-client'];
  if (!values.id || !values.name || !values.type) {
    throw new AuthError('BAD_USER_INPUT', `--id, --name and --type are required\n${usage}`);
  }
  const type = values.type.toUpperCase();
  if (!CLIENT_TYPES.includes(type as ClientType)) {
    throw new AuthError('BAD_USER_INPUT', '--type: expected PUBLIC or CONFIDENTIAL');
  }
  const input = {
    id: values.id,
    name: values.name,
    type: type as ClientType,
    audiences: values.audience ?? [],
    scopes: values.scope ?? [],
    redirectUris: values['redirect-uri'] ?? [],
    allowedOrigins: values['allowed-origin'] ?? [],
  };
  return withService(async (app, em) => {
    const { client, clientSecret } = await asCli((call) => createClient(app.services, call, input), em);
    return credentialLines(`created ${client.type} client ${client.id}`, client.id, clientSecret);
  });
}

/** What the operator copies: the id and, once, the secret (stdout only; a note about it goes to stderr). */
function credentialLines(done: string, clientId: string, secret: string | null): string {
  if (secret === null) return `${done}\nclient_id: ${clientId}`;
  process.stderr.write('The client secret is shown this once: store it now (rotate-client-secret makes a new one).\n');
  return `${done}\nclient_id: ${clientId}\nclient_secret: ${secret}`;
}

async function rotateClientSecretCommand(args: string[]): Promise<string> {
  const id = clientIdOf('rotate-client-secret', args);
  return withService(async (app, em) => {
    const { clientSecret } = await asCli((call) => rotateClientSecret(app.services, call, { id }), em);
    return credentialLines(`rotated the secret of ${id}: the old one and its tokens are refused`, id, clientSecret);
  });
}

/** disable-client and enable-client: through the app's flow, so every instance sharing Redis refuses at once. */
async function setClientDisabledCommand(args: string[], disabled: boolean): Promise<string> {
  const id = clientIdOf(disabled ? 'disable-client' : 'enable-client', args);
  return withService(async (app, em) => {
    const before = app.services.clients.get(id);
    await asCli((call) => setClientDisabled(app.services, call, { id, disabled }), em);
    if (before?.disabled === disabled) return `${id} is already ${disabled ? 'disabled' : 'enabled'}`;
    return disabled
      ? `disabled ${id}: its sessions are ended, its tokens and sign-ins refused until enable-client`
      : `enabled ${id}: it can sign users in and get tokens again (tokens from before stay refused)`;
  });
}

const COMMANDS = {
  'create-admin': {
    usage: 'usage: npm run admin -- create-admin EMAIL',
    summary: 'make an account an admin, creating it when there is none',
    details:
      'An existing account gets the ADMIN role (its tokens carry it from the next sign-in or refresh).\n' +
      'For a new account the password is asked on the terminal (not echoed, asked twice), or read from\n' +
      'standard input when it is piped: printf %s "$PASSWORD" | npm run admin -- create-admin EMAIL',
    run: createAdmin,
  },
  'list-users': {
    usage: `usage: npm run admin -- list-users [--search TEXT] [--limit N]`,
    summary: 'list accounts, oldest first',
    details:
      `--search TEXT  only accounts whose email or display name contains TEXT (case-insensitive)\n` +
      `--limit N      at most N accounts (1-${MAX_PAGE_SIZE}, default ${MAX_PAGE_SIZE})`,
    run: listUsersCommand,
  },
  'revoke-sessions': {
    usage: 'usage: npm run admin -- revoke-sessions EMAIL|ID',
    summary: 'end every session of an account (reason REVOKED_BY_ADMIN)',
    details:
      'Its refresh tokens stop working, and its access tokens are refused at once by every instance that\n' +
      'shares REDIS_URL (without Redis, a running instance refuses them when they expire).',
    run: revokeSessions,
  },
  'disable-user': {
    usage: 'usage: npm run admin -- disable-user EMAIL|ID',
    summary: 'switch an account off: its sessions end, it cannot sign in or refresh',
    details:
      'Its sessions are revoked (REVOKED_BY_ADMIN) as revoke-sessions does; signing in with the right password\n' +
      'answers ACCOUNT_DISABLED, and neither OAuth nor a password reset brings it back. The last enabled admin\n' +
      'cannot be disabled. enable-user switches it on again.',
    run: (args: string[]) => setDisabled(args, true),
  },
  'enable-user': {
    usage: 'usage: npm run admin -- enable-user EMAIL|ID',
    summary: 'switch a disabled account on again (it signs in anew)',
    details: 'Its old sessions stay ended: the account holder signs in again.',
    run: (args: string[]) => setDisabled(args, false),
  },
  'create-client': {
    usage:
      'usage: npm run admin -- create-client --id ID --name NAME --type PUBLIC|CONFIDENTIAL [--audience A]... ' +
      '[--scope S]... [--redirect-uri U]... [--allowed-origin O]...',
    summary: 'register an app (PUBLIC) or a service (CONFIDENTIAL, with a secret)',
    details:
      '--id ID              the client_id: 3-64 of a-z, 0-9 and -\n' +
      '--name NAME          1-200 characters\n' +
      '--type TYPE          PUBLIC (browser or mobile app, no secret) or CONFIDENTIAL (a service, gets a secret)\n' +
      '--audience A         the aud of its tokens (repeatable; none: AUDIENCE)\n' +
      '--scope S            an API scope its tokens may carry (repeatable); CONFIDENTIAL clients may also have\n' +
      '                     sessions:feed and users:read\n' +
      '--redirect-uri U     an OAuth redirect URI it may use (repeatable): https, or http on localhost\n' +
      '--allowed-origin O   a browser origin allowed to call with credentials (repeatable), e.g. https://app.example.com\n' +
      'Prints the client_id and, for CONFIDENTIAL, the client_secret: shown this once, stored only as a hash.\n' +
      'Running instances that share REDIS_URL know the client at once; without Redis, after their restart.',
    run: createClientCommand,
  },
  'rotate-client-secret': {
    usage: 'usage: npm run admin -- rotate-client-secret --id ID',
    summary: 'give a CONFIDENTIAL client a new secret; the old one and its tokens stop working',
    details:
      'Prints the new client_secret once. Service tokens issued before are refused at once by every instance\n' +
      'that shares REDIS_URL (reason CLIENT_DISABLED).',
    run: rotateClientSecretCommand,
  },
  'disable-client': {
    usage: 'usage: npm run admin -- disable-client --id ID',
    summary: 'switch a client off: its sessions end, its tokens and sign-ins are refused',
    details:
      'Every session opened for it is revoked (CLIENT_DISABLED) and its service tokens are refused. The default\n' +
      'client cannot be disabled. enable-client switches it on again.',
    run: (args: string[]) => setClientDisabledCommand(args, true),
  },
  'enable-client': {
    usage: 'usage: npm run admin -- enable-client --id ID',
    summary: 'switch a disabled client on again',
    details: 'It signs users in and gets service tokens again; tokens issued before it was disabled stay refused.',
    run: (args: string[]) => setClientDisabledCommand(args, false),
  },
} as const satisfies Record<string, Command>;

type CommandName = keyof typeof COMMANDS;

const HELP = [
  'usage: npm run admin -- <command> [arguments]   (in the service environment: .env and its variables)',
  '',
  'commands:',
  ...Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(21)} ${command.summary}`),
  '',
  'npm run admin -- <command> --help   says more about one command',
].join('\n');

const isHelp = (arg: string | undefined) => arg === '--help' || arg === '-h' || arg === 'help';

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || isHelp(name)) {
    const asked = isHelp(name) ? args[0] : undefined;
    if (asked && asked in COMMANDS) {
      const command = COMMANDS[asked as CommandName];
      console.log(`${command.usage}\n\n${command.summary}.\n${command.details}`);
    } else console.log(HELP);
    return name === undefined ? 2 : 0;
  }
  if (!(name in COMMANDS)) {
    console.error(`unknown command "${name}"\n\n${HELP}`);
    return 2;
  }
  const command = COMMANDS[name as CommandName];
  if (args.some(isHelp)) {
    console.log(`${command.usage}\n\n${command.summary}.\n${command.details}`);
    return 0;
  }
  try {
    console.log(await command.run(args));
    return 0;
  } catch (error) {
    if (error instanceof ConfigError) console.error(configErrorLines(error));
    else if (error instanceof AuthError) console.error(error.message);
    else if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) {
      console.error(`${error.message}\n${command.usage}`);
    } else console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
