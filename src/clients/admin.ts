// The admin surface over clients (API.md "Clients"): create, update, rotate a CONFIDENTIAL client's secret,
// disable or enable; each change committed with an audit row, then published whole to every instance's registry.
import { LockMode, UniqueConstraintViolationException } from '@mikro-orm/core';
import { audit } from '../audit/audit.ts';
import { type Call, callerOf } from '../call.ts';
import type { Clock } from '../clock.ts';
import { type AuditEventType, CLIENT_TYPES, Client, type ClientRow, type ClientType } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { transactional } from '../db/transaction.ts';
import { AuthError, badInput } from '../errors.ts';
import type { RevocationBus } from '../events/revocation-bus.ts';
import { holdCallerSession } from '../sessions/caller-session.ts';
import type { Revocation, Sessions } from '../sessions/sessions.ts';
import { isApiScopeName, SERVICE_BUILT_IN_SCOPES } from '../tokens/scopes.ts';
import {
  CLIENT_ID_PATTERN,
  type ClientInfo,
  type ClientRegistry,
  clientInfoOf,
  DEFAULT_CLIENT_ID,
} from './registry.ts';
import { hashClientSecret, newClientSecret } from './secret.ts';

export interface ClientAdminDeps {
  readonly clients: ClientRegistry;
  readonly bus: RevocationBus;
  readonly sessions: Sessions;
  readonly clock: Clock;
}

/** A change's call: the API's (the caller, an admin, is named in the audit trail) or the admin CLI's. */
export type ClientAdminCall = Call | (Pick<Call, 'em' | 'meta'> & { readonly by: 'cli' });

/** A client as the API shows it, and its secret: shown here once, for a CONFIDENTIAL client only. */
export interface ClientCredentials {
  readonly client: ClientInfo;
  readonly clientSecret: string | null;
}

export interface ClientLists {
  readonly audiences?: readonly string[] | null;
  readonly redirectUris?: readonly string[] | null;
  readonly allowedOrigins?: readonly string[] | null;
  readonly scopes?: readonly string[] | null;
}

export interface CreateClientInput extends ClientLists {
  readonly id: string;
  readonly name: string;
  readonly type: ClientType;
}

export interface UpdateClientInput extends ClientLists {
  readonly name?: string | null;
}

/** At most this many entries in each of a client's lists: every instance holds them all in memory. */
export const MAX_CLIENT_LIST_ITEMS = 50;
const MAX_NAME_LENGTH = 200;
const MAX_ITEM_LENGTH = 2048;
const MAX_LIST_BYTES = 16_384;
// Control characters (C0, DEL, C1) and the bidi controls, which would make a name or an audience read differently
// from what it is.
const CONTROL = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
/**
 * A user id (randomUUID). A service token's `sub` is its client id (RFC 9068 §2.2), so a client named like a user
 * would get tokens whose `sub` is that user's, and a resource server keying on `sub` would take one for the other
 * (RFC 9068 §5 asks the authorization server to prevent this).
 */
const USER_ID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** What a URL writes between `scheme://` and its path, query or fragment (backslashes end it too, as in WHATWG URLs). */
const AUTHORITY = /^[a-z][a-z0-9+.-]*:\/\/([^/\\?#]*)/i;

const actorOf = (call: ClientAdminCall): string => ('by' in call ? call.by : callerOf(call).sub);
/** The signed-in user behind the call, if any (none for the CLI, nor for a service token). */
const callerIn = (call: ClientAdminCall) => ('by' in call ? null : call.caller);

function validName(name: string): string {
  const trimmed = name.trim();
  const length = [...trimmed].length;
  if (length === 0 || length > MAX_NAME_LENGTH || CONTROL.test(trimmed)) {
    throw badInput('name', `A client's name is 1 to ${MAX_NAME_LENGTH} characters, without control characters`);
  }
  return trimmed;
}

/** Checks each item of a list with `valid` (BAD_USER_INPUT naming `field`); drops repeats, keeping the order. */
function validList(field: string, items: readonly string[], valid: (item: string) => boolean, rule: string): string[] {
  if (items.length > MAX_CLIENT_LIST_ITEMS) {
    throw badInput(field, `At most ${MAX_CLIENT_LIST_ITEMS} ${field}`);
  }
  const bad = items.find((item) => item.length === 0 || item.length > MAX_ITEM_LENGTH || !valid(item));
  if (bad !== undefined) throw badInput(field, `Each of ${field} must be ${rule}`);
  const unique = [...new Set(items)];
  // The column is a MySQL TEXT (64 KiB), and every instance holds the list in memory: bounded well below that.
  if (Buffer.byteLength(JSON.stringify(unique)) > MAX_LIST_BYTES) {
    throw badInput(field, `The ${field} take at most ${MAX_LIST_BYTES} bytes in all`);
  }
  return unique;
}

/**
 * Redirect URIs are compared byte for byte with what a sign-in sends (as OAUTH_REDIRECT_URIS): absolute, without
 * query or fragment, and https, or http on a loopback address (RFC 8252 native apps): an admin-registered URI on
 * plain http elsewhere would send authorization codes in the clear. No userinfo either (RFC 3986 §3.2.1 deprecates
 * it): `https://app.example.com@evil.example/cb` reads as the app's host to whoever reviews the list, yet sends
 * codes to evil.example.
 */
function isRedirectUri(value: string): boolean {
  // No whitespace: the URL parser drops it around a URL and encodes it inside, so the list would show a URI that
  // no sign-in sends.
  if (!URL.canParse(value) || /[#?\s]/.test(value) || CONTROL.test(value)) return false;
  const url = new URL(value);
  // The authority as written, not as parsed: `https://@host/` parses to an empty userinfo but still has one.
  if (url.username !== '' || url.password !== '' || AUTHORITY.exec(value)?.[1]?.includes('@')) return false;
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname));
}

/** An origin exactly as a browser writes it in the Origin header (scheme://host[:port]), else it matches nothing. */
function isOrigin(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const url = new URL(value);
  return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === value;
}

/** API scopes, and for a CONFIDENTIAL client the built-in scopes its service tokens may carry; sorted. */
function validScopes(type: ClientType, scopes: readonly string[]): string[] {
  const allowed = (scope: string) =>
    isApiScopeName(scope) || (type === 'CONFIDENTIAL' && SERVICE_BUILT_IN_SCOPES.includes(scope));
  const rule =
    type === 'CONFIDENTIAL'
      ? `an API scope name or one of ${SERVICE_BUILT_IN_SCOPES.join(', ')}`
      : 'an API scope name (1-64 of a-z 0-9 _ . : -, starting with a letter; not a built-in scope)';
  return validList('scopes', scopes, allowed, rule).sort();
}

/** The columns for the lists given in `input` (absent ones stay as they are), as JSON arrays. */
function listColumns(type: ClientType, input: ClientLists): Partial<ClientRow> {
  const columns: Partial<ClientRow> = {};
  if (input.audiences != null) {
    const audiences = validList(
      'audiences',
      input.audiences,
      (item) => !CONTROL.test(item),
      'a non-empty string of at most 2048 characters without control characters',
    );
    // Empty means "the configured AUDIENCE", resolved by the registry: AUDIENCE may change, the row need not.
    columns.audiences = JSON.stringify(audiences);
  }
  if (input.redirectUris != null) {
    const uris = validList('redirectUris', input.redirectUris, isRedirectUri, 'an absolute https URL');
    columns.redirectUris = JSON.stringify(uris);
  }
  if (input.allowedOrigins != null) {
    const origins = validList('allowedOrigins', input.allowedOrigins, isOrigin, 'an origin (https://host[:port])');
    columns.allowedOrigins = JSON.stringify(origins);
  }
  if (input.scopes != null) columns.scopes = JSON.stringify(validScopes(type, input.scopes));
  return columns;
}

const duplicateId = () => badInput('id', 'A client with this id already exists');

/**
 * Registers a client. A CONFIDENTIAL one gets a secret, returned here once and stored only as its hash. An id
 * that is taken is BAD_USER_INPUT (field id), also when several creations race for it (the primary key decides).
 */
export async function createClient(
  deps: ClientAdminDeps,
  call: ClientAdminCall,
  input: CreateClientInput,
): Promise<ClientCredentials> {
  const by = actorOf(call);
  if (!CLIENT_ID_PATTERN.test(input.id)) throw badInput('id', 'A client id is 3 to 64 of a-z, 0-9 and -');
  if (USER_ID_SHAPE.test(input.id)) {
    throw badInput('id', "A client id cannot look like a user id (a UUID): a service token's sub is its client id");
  }
  if (!CLIENT_TYPES.includes(input.type)) throw badInput('type', 'A client is PUBLIC or CONFIDENTIAL');
  const name = validName(input.name);
  const lists = listColumns(input.type, input);
  const secret = input.type === 'CONFIDENTIAL' ? newClientSecret() : null;
  let row: ClientRow;
  try {
    row = await transactional(call.em, async (tx) => {
      await holdCallerSession(tx, callerIn(call));
      if ((await tx.count(Client, { id: input.id })) > 0) throw duplicateId();
      const now = new Date(deps.clock.now());
      const created = tx.create(Client, {
        id: input.id,
        name,
        type: input.type,
        secretHash: secret === null ? null : hashClientSecret(secret),
        audiences: '[]',
        redirectUris: '[]',
        allowedOrigins: '[]',
        scopes: '[]',
        ...lists,
        disabled: false,
        tokensRevokedAt: null,
        tokensRevokedReason: null,
        createdAt: now,
        updatedAt: now,
      });
      audit(tx, call.meta, { type: 'CLIENT_CREATED', detail: { by, clientId: input.id, type: input.type } }, now);
      return created;
    });
  } catch (error) {
    // Two creations that both counted nothing: the later insert meets the earlier one's primary key.
    if (error instanceof UniqueConstraintViolationException) throw duplicateId();
    throw error;
  }
  const client = clientInfoOf(row);
  await deps.bus.publishClientChanged(client);
  return { client, clientSecret: secret };
}

interface Change {
  readonly columns: Partial<ClientRow>;
  readonly event: AuditEventType;
  readonly detail?: Readonly<Record<string, string | number | boolean | null>>;
  /** Sessions revoked in the same transaction, published after commit. */
  readonly revocations?: readonly Revocation[];
}

/**
 * Runs `change` on the client's row, locked for the transaction (NOT_FOUND when there is none), writes what it
 * returns with a later `updatedAt` and an audit row, then publishes the client's new state (and any revocations)
 * after commit. `change` returning undefined changes nothing.
 */
async function changeClient(
  deps: ClientAdminDeps,
  call: ClientAdminCall,
  id: string,
  change: (current: ClientRow, tx: Em, now: Date) => Promise<Change | undefined> | Change | undefined,
): Promise<ClientInfo> {
  const by = actorOf(call);
  const { row, changed, revocations } = await transactional(call.em, async (tx) => {
    const [current] = await tx.find(Client, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE, disableIdentityMap: true });
    if (!current) throw new AuthError('NOT_FOUND', 'No such client');
    await holdCallerSession(tx, callerIn(call));
    const now = new Date(deps.clock.now());
    const outcome = await change(current, tx, now);
    if (!outcome) return { row: current, changed: false, revocations: [] };
    // Strictly later than the state it replaces: a registry keeps the newer of two copies by this time, so two
    // changes within one millisecond (or a clock step back) must not tie.
    const updatedAt = new Date(Math.max(now.getTime(), current.updatedAt.getTime() + 1));
    const columns = { ...outcome.columns, updatedAt };
    await tx.nativeUpdate(Client, { id }, columns);
    audit(tx, call.meta, { type: outcome.event, detail: { by, clientId: id, ...outcome.detail } }, now);
    return { row: { ...current, ...columns } as ClientRow, changed: true, revocations: outcome.revocations ?? [] };
  });
  const client = clientInfoOf(row);
  if (changed) await deps.bus.publishClientChanged(client);
  for (const revocation of revocations) await deps.sessions.published(revocation);
  return client;
}

/**
 * Changes a client's name and lists (those given; the type and id never change). Scopes it no longer declares
 * leave its sessions alone: their next refresh (and the client's next service token) is issued without them,
 * within one access-token lifetime, as an app's whole user base should not be signed out for it.
 */
export function updateClient(
  deps: ClientAdminDeps,
  call: ClientAdminCall,
  input: { id: string; changes: UpdateClientInput },
): Promise<ClientInfo> {
  const { changes } = input;
  const name = changes.name != null ? validName(changes.name) : undefined;
  return changeClient(deps, call, input.id, (current) => {
    const columns: Partial<ClientRow> = {
      ...(name === undefined ? {} : { name }),
      ...listColumns(current.type as ClientType, changes),
    };
    const fields = Object.keys(columns).sort();
    return { columns, event: 'CLIENT_UPDATED', detail: { fields: fields.join(',') } };
  });
}

/**
 * Gives a CONFIDENTIAL client a new secret (returned here once) and refuses, at once and on every instance, each
 * service token issued to it before now (reason CLIENT_SECRET_ROTATED); the old secret authenticates nothing
 * from the commit on. A PUBLIC client has no secret: BAD_USER_INPUT (field id).
 */
export async function rotateClientSecret(
  deps: ClientAdminDeps,
  call: ClientAdminCall,
  { id }: { id: string },
): Promise<ClientCredentials> {
  let secret = '';
  const client = await changeClient(deps, call, id, (current, _tx, now) => {
    if (current.type !== 'CONFIDENTIAL') throw badInput('id', 'A PUBLIC client has no secret to rotate');
    // Made in the transaction's run, so a run that is retried hands out the secret that was committed.
    secret = newClientSecret();
    return {
      columns: {
        secretHash: hashClientSecret(secret),
        tokensRevokedAt: now,
        tokensRevokedReason: 'CLIENT_SECRET_ROTATED',
      },
      event: 'CLIENT_SECRET_ROTATED',
    };
  });
  return { client, clientSecret: secret };
}

/**
 * Disables or enables a client. Disabling refuses every token of the client at once on every instance, revokes
 * every active session opened for it (reason CLIENT_DISABLED) in the same transaction, and refuses sign-ins that
 * name it. Enabling lets it sign users in and get service tokens again; tokens issued before it was disabled stay
 * refused. The `default` client cannot be disabled (BAD_USER_INPUT, field id): every sign-in without a clientId
 * uses it. Setting what is already set changes nothing.
 */
export function setClientDisabled(
  deps: ClientAdminDeps,
  call: ClientAdminCall,
  input: { id: string; disabled: boolean },
): Promise<ClientInfo> {
  const { id, disabled } = input;
  if (disabled && id === DEFAULT_CLIENT_ID) {
    throw badInput('id', 'The default client cannot be disabled: every sign-in without a clientId uses it');
  }
  return changeClient(deps, call, id, async (current, tx, now) => {
    if (Boolean(current.disabled) === disabled) return undefined;
    if (!disabled) return { columns: { disabled: false }, event: 'CLIENT_ENABLED' };
    const revocations = await deps.sessions.revokeByClientIn(tx, {
      clientId: id,
      reason: 'CLIENT_DISABLED',
      meta: call.meta,
    });
    const sessions = revocations.reduce((sum, revocation) => sum + revocation.sessionIds.length, 0);
    return {
      columns: { disabled: true, tokensRevokedAt: now, tokensRevokedReason: 'CLIENT_DISABLED' },
      event: 'CLIENT_DISABLED',
      detail: { sessions },
      revocations,
    };
  });
}

/** Every client, by id (this instance's copy of the registry, current with every committed change it was told of). */
export const listClients = (deps: Pick<ClientAdminDeps, 'clients'>): ClientInfo[] => deps.clients.list();

/** A client by id; null when there is none. */
export const findClient = (deps: Pick<ClientAdminDeps, 'clients'>, { id }: { id: string }): ClientInfo | null =>
  deps.clients.get(id) ?? null;
