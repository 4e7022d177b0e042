// Every instance's copy of the client registry (the clients table, minus secrets), so that issuing and verifying
// a token never reads the database for its client. Loaded at start; each committed change is published whole on
// the bus (ClientChangedEvent) and replaces the copy on every instance, this one before the change's response;
// reloaded from the database after a bus outage and while the bus is down.
import type { Logger } from 'pino';
import { Client, type ClientRow, type RevocationReason } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { badInput } from '../errors.ts';
import type { ClientChangedEvent, RevocationBus } from '../events/revocation-bus.ts';

export type ClientInfo = ClientChangedEvent;

/** The built-in PUBLIC client, created by the migration that made the registry. */
export const DEFAULT_CLIENT_ID = 'default';

/** A client id (API.md): 3–64 of [a-z0-9-]. */
export const CLIENT_ID_PATTERN = /^[a-z0-9-]{3,64}$/;

const parseList = (text: string): string[] => {
  try {
    const value = JSON.parse(text) as unknown;
    return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
  } catch {
    return [];
  }
};

/** A row of the clients table as the registry (and the bus) holds it. */
export function clientInfoOf(row: ClientRow): ClientInfo {
  return {
    id: row.id,
    name: row.name,
    type: row.type as ClientInfo['type'],
    audiences: parseList(row.audiences),
    redirectUris: parseList(row.redirectUris),
    allowedOrigins: parseList(row.allowedOrigins),
    scopes: parseList(row.scopes),
    disabled: Boolean(row.disabled),
    tokensRevokedAt: row.tokensRevokedAt ? row.tokensRevokedAt.getTime() : null,
    tokensRevokedReason: (row.tokensRevokedReason ?? null) as RevocationReason | null,
    createdAt: row.createdAt.getTime(),
    updatedAt: row.updatedAt.getTime(),
  };
}

/**
 * The first whole second after `tokensRevokedAt`: a service token is refused when its `iat` (whole seconds) is
 * before it, and the token endpoint never issues one with an earlier `iat`, so a token issued in the same second
 * as a rotation but after it still verifies, and one issued before it never does.
 */
export const revocationCutoffSeconds = (tokensRevokedAt: number | null): number =>
  tokensRevokedAt === null ? 0 : Math.floor(tokensRevokedAt / 1000) + 1;

export class ClientRegistry {
  readonly #clients = new Map<string, ClientInfo>();
  readonly #audience: string;
  #unsubscribe: (() => void) | undefined;
  /** How many changes the bus has applied; `#appliedAt` has, per client, that count when it was last applied. */
  #applies = 0;
  readonly #appliedAt = new Map<string, number>();

  /** `audience`: the configured AUDIENCE, which a client without audiences of its own stands for. */
  constructor(audience: string) {
    this.#audience = audience;
  }

  /** Replaces the copy of one client, unless the copy is already newer. */
  apply(info: ClientInfo): void {
    const known = this.#clients.get(info.id);
    if (known && known.updatedAt > info.updatedAt) return;
    this.#clients.set(info.id, info);
    this.#appliedAt.set(info.id, ++this.#applies);
  }

  /**
   * Reads every client from the database (the source of truth) into the copy, except the clients the bus changed
   * while it read: their change was committed after the read began (its message came after), so the row read may
   * be older than the copy (a client disabled on another instance, which answered once this one had applied it).
   */
  async load(em: Em): Promise<void> {
    const since = this.#applies;
    const rows = await em.find(Client, {}, { disableIdentityMap: true });
    const changedMeanwhile = (id: string) => (this.#appliedAt.get(id) ?? 0) > since;
    const seen = new Set<string>();
    for (const row of rows) {
      const info = clientInfoOf(row);
      seen.add(info.id);
      // After an outage the database wins, whatever the copy's time says.
      if (!changedMeanwhile(info.id)) this.#clients.set(info.id, info);
    }
    for (const id of this.#clients.keys()) if (!seen.has(id) && !changedMeanwhile(id)) this.#clients.delete(id);
  }

  /** Loads, then keeps the copy current from the bus and reloads whenever the bus comes back after an outage. */
  async follow(bus: RevocationBus, fork: () => Em, logger: Logger): Promise<void> {
    const stopChanges = bus.subscribeClientChanged((event) => this.apply(event));
    const stopLiveness = bus.onLiveness((live) => {
      if (live) this.load(fork()).catch((error) => logger.error({ err: error }, 'could not reload clients'));
    });
    this.#unsubscribe = () => {
      stopChanges();
      stopLiveness();
    };
    await this.load(fork());
  }

  get(id: string): ClientInfo | undefined {
    return this.#clients.get(id);
  }

  list(): ClientInfo[] {
    return [...this.#clients.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The client's audiences as tokens carry them: its own, or [AUDIENCE] when it has none (the signer adds AUDIENCE to user tokens). */
  audiencesOf(client: ClientInfo): readonly string[] {
    return client.audiences.length > 0 ? client.audiences : [this.#audience];
  }

  /**
   * The client a sign-in names (default `default`): BAD_USER_INPUT on field `clientId` when it is unknown or
   * disabled, with one message for both (nobody learns which ids exist).
   */
  forSignIn(clientId: string | null | undefined): ClientInfo {
    const client = this.#clients.get(clientId ?? DEFAULT_CLIENT_ID);
    if (!client || client.disabled) {
      throw badInput('clientId', 'Unknown or disabled client');
    }
    return client;
  }

  /**
   * Why a verified token of `clientId` is refused, or undefined: every token of a disabled or unknown client, and
   * a service token (no session) issued before the client's tokens were revoked (secret rotated, disabled since).
   * Reason CLIENT_DISABLED either way (API.md reasons).
   */
  refuses(clientId: string, iat: number, service: boolean): 'CLIENT_DISABLED' | undefined {
    const client = this.#clients.get(clientId);
    if (!client || client.disabled) return 'CLIENT_DISABLED';
    if (service && iat < revocationCutoffSeconds(client.tokensRevokedAt)) return 'CLIENT_DISABLED';
    return undefined;
  }

  /** Every origin some client allows to call with credentials (CORS), for the origin policy. */
  allowedOrigins(): string[] {
    const origins = new Set<string>();
    for (const client of this.#clients.values())
      if (!client.disabled) for (const o of client.allowedOrigins) origins.add(o);
    return [...origins];
  }

  close(): void {
    this.#unsubscribe?.();
  }
}
