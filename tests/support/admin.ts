// An administrator for suites that need one: a fresh account made ADMIN in the database (the one step the public
// API cannot take without an admin already), then signed in again so that its token carries the role.
import { User } from '../../src/db/entities.ts';
import type { Em } from '../../src/db/orm.ts';
import type { TestApp } from './app.ts';
import { type Payload, registerUser, signIn } from './graphql.ts';

/** A new ADMIN account's fresh sign-in (its token has ADMIN's scopes, clients:admin included). */
export async function signInAsAdmin(t: TestApp): Promise<Payload> {
  const admin = await registerUser(t.gql);
  const em = t.app.orm.em.fork() as Em;
  await em.nativeUpdate(User, { id: admin.user.id }, { roles: 'USER,ADMIN' });
  return signIn(t.gql, admin.user.email, admin.password);
}
