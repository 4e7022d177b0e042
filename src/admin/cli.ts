// `npm run admin -- create-admin EMAIL`: makes an account an admin, creating it if needed
// (the new account's password is read from standard input, never from the command line).
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { text } from 'node:stream/consumers';
import { audit } from '../audit/audit.ts';
import { createPasswordHasher } from '../auth/passwords.ts';
import { normalizeEmail, validatePassword } from '../auth/validate.ts';
import { ConfigError, configErrorLines, loadConfig } from '../config.ts';
import { User } from '../db/entities.ts';
import { migrate } from '../db/migrate.ts';
import { createOrm, type Em } from '../db/orm.ts';
import { AuthError } from '../errors.ts';
import { rolesOf } from '../sessions/sessions.ts';

const USAGE = 'usage: npm run admin -- create-admin EMAIL   (for a new account, pipe its password on standard input)';

async function createAdmin(emailInput: string): Promise<string> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  const config = loadConfig(process.env, (path) => readFileSync(path, 'utf8'));
  const email = normalizeEmail(emailInput);
  const orm = await createOrm(config.database);
  try {
    await migrate(orm);
    const em = orm.em.fork() as Em;
    const meta = { ipAddress: null, userAgent: 'admin-cli' };
    const now = new Date();
    const existing = await em.findOne(User, { email });
    if (existing) {
      const roles = rolesOf(existing);
      if (roles.includes('ADMIN')) return `${email} is already an admin`;
      existing.roles = [...roles, 'ADMIN'].join(',');
      existing.updatedAt = now;
      audit(em, meta, { type: 'ROLES_CHANGED', userId: existing.id, detail: { by: 'cli', to: existing.roles } }, now);
      await em.flush();
      return `${email} is now an admin (it takes effect at the next sign-in or refresh)`;
    }
    if (process.stdin.isTTY) throw new AuthError('BAD_USER_INPUT', `no account ${email}: ${USAGE}`);
    const password = validatePassword((await text(process.stdin)).replace(/\r?\n$/, ''));
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
    audit(em, meta, { type: 'USER_REGISTERED', userId: user.id, detail: { by: 'cli' } }, now);
    audit(em, meta, { type: 'ROLES_CHANGED', userId: user.id, detail: { by: 'cli', to: 'USER,ADMIN' } }, now);
    await em.flush();
    return `created admin ${email}`;
  } finally {
    await orm.close();
  }
}

const [command, email] = process.argv.slice(2);
if (command !== 'create-admin' || !email) {
  console.error(USAGE);
  process.exit(2);
}
try {
  console.log(await createAdmin(email));
} catch (error) {
  if (error instanceof ConfigError) console.error(configErrorLines(error));
  else if (error instanceof AuthError) console.error(error.message);
  else console.error(error);
  process.exitCode = 1;
}
