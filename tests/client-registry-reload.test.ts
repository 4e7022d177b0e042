// An instance's copy of the clients table reloaded (after a bus outage, or on the poll while Redis is down) while
// a client change arrives on the bus: a read from before that change's commit must not undo it in the copy.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientRegistry } from '../src/clients/registry.ts';
import type { Em } from '../src/db/orm.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { createTestClient } from './support/client-credentials.ts';

describe.each(dialects())('the clients copy reloaded while a change arrives, on %s', (dialect) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ dialect });
  });

  afterAll(async () => {
    await t?.close();
  });

  /** `em`, whose reads hold their rows until `release` once read (the reload's SELECT done, its result not used). */
  function heldReads(em: Em) {
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let read = () => {};
    const wasRead = new Promise<void>((resolve) => {
      read = resolve;
    });
    const held = new Proxy(em, {
      get(target, property) {
        if (property === 'find') {
          return async (...args: Parameters<Em['find']>) => {
            const rows = await target.find(...args);
            read();
            await released;
            return rows;
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    return { em: held, wasRead, release };
  }

  const setDisabled = (adminToken: string, id: string, disabled: boolean) =>
    t.gql(
      'mutation($id: ID!, $disabled: Boolean!) { setClientDisabled(id: $id, disabled: $disabled) { disabled } }',
      { id, disabled },
      { token: adminToken },
    );

  it('keeps a client disabled on the bus during the reload disabled, and one created then', async () => {
    const admin = await signInAsAdmin(t);
    const existing = await createTestClient(t.gql, admin.accessToken, { id: `reload-${Date.now().toString(36)}` });
    // A second copy, following the app's bus as every instance's does.
    const copy = new ClientRegistry('https://api.test');
    await copy.follow(t.app.bus, () => t.app.orm.em.fork() as Em, pino({ level: 'silent' }));
    expect(copy.get(existing.id)?.disabled).toBe(false);

    const reload = heldReads(t.app.orm.em.fork() as Em);
    const loading = copy.load(reload.em);
    await reload.wasRead;
    // Committed after the reload's read, and told on the bus (the copy applies it at once).
    expect((await setDisabled(admin.accessToken, existing.id, true)).data).toEqual({
      setClientDisabled: { disabled: true },
    });
    const created = await createTestClient(t.gql, admin.accessToken, { id: `late-${Date.now().toString(36)}` });
    expect(copy.get(existing.id)?.disabled).toBe(true);
    expect(copy.get(created.id)?.id).toBe(created.id);
    reload.release();
    await loading;
    expect(copy.get(existing.id)?.disabled).toBe(true);
    expect(copy.get(created.id)?.id).toBe(created.id);

    // A reload that read after the changes still takes the database's rows.
    await copy.load(t.app.orm.em.fork() as Em);
    expect(copy.get(existing.id)?.disabled).toBe(true);
    copy.close();
  });
});
