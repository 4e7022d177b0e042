// What a flow knows of the call it serves, built once per request by the transport: the request's
// EntityManager (forked on first use), who is calling from where, and the verified caller (null when anonymous).
// Every flow has the shape `flow(deps, call, input)`.
import type { RequestMeta } from './audit/audit.ts';
import { User, type UserRow } from './db/entities.ts';
import type { Em } from './db/orm.ts';
import { unauthenticated } from './errors.ts';
import type { AccessClaims } from './tokens/claims.ts';

export interface Call {
  /** A fork of the ORM's EntityManager for this request, made when a flow first asks for it. */
  readonly em: Em;
  /** Client address and user agent, for sessions, limits and the audit trail. */
  readonly meta: RequestMeta;
  /** The claims of the verified access token; null for an anonymous call. */
  readonly caller: AccessClaims | null;
}

/** The caller of a flow that needs one: UNAUTHENTICATED (AUTHENTICATION_REQUIRED) when anonymous. */
export function callerOf(call: Call): AccessClaims {
  if (!call.caller) throw unauthenticated('AUTHENTICATION_REQUIRED');
  return call.caller;
}

/**
 * The caller's account, loaded on the call's EntityManager (managed, so a flow may change it): UNAUTHENTICATED
 * (AUTHENTICATION_REQUIRED) when anonymous, and SESSION_REVOKED when the account is gone (its deletion revoked
 * every session; a token may outlive that by a moment on another instance).
 */
export async function callerAccount(call: Call): Promise<UserRow> {
  const user = await call.em.findOne(User, { id: callerOf(call).sub });
  if (!user) throw unauthenticated('SESSION_REVOKED');
  return user;
}

/** A Call whose EntityManager is forked from `fork` only when a flow first asks for it. */
export function createCall(fork: () => Em, meta: RequestMeta, caller: AccessClaims | null): Call {
  let em: Em | undefined;
  return {
    get em() {
      em ??= fork();
      return em;
    },
    meta,
    caller,
  };
}
