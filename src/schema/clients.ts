// Clients (API.md "Clients"): the registry of apps and services tokens are issued to, and its admin surface
// (scope clients:admin): clients, client(id), createClient, updateClient, rotateClientSecret, setClientDisabled.
import {
  type ClientCredentials,
  createClient,
  findClient,
  listClients,
  rotateClientSecret,
  setClientDisabled,
  updateClient,
} from '../clients/admin.ts';
import type { ClientInfo } from '../clients/registry.ts';
import { CLIENT_TYPES } from '../db/entities.ts';
import { builder } from './builder.ts';

export const ClientTypeEnum = builder.enumType('ClientType', {
  description:
    'PUBLIC: a browser or mobile app, no secret. CONFIDENTIAL: a service with a secret (client credentials).',
  values: CLIENT_TYPES,
});

export const ClientObjectType = builder.objectRef<ClientInfo>('Client').implement({
  description: 'An application or service that tokens are issued to.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The client_id: 3-64 of [a-z0-9-], chosen at creation.' }),
    name: t.exposeString('name'),
    type: t.field({ type: ClientTypeEnum, resolve: (client) => client.type }),
    audiences: t.stringList({
      description: 'The aud of tokens issued to it: its own, or the configured AUDIENCE when it has none.',
      resolve: (client, _args, context) => [...context.services.clients.audiencesOf(client)],
    }),
    redirectUris: t.stringList({
      description: 'Its OAuth redirect allow-list (exact match), besides OAUTH_REDIRECT_URIS.',
      resolve: (client) => [...client.redirectUris],
    }),
    allowedOrigins: t.stringList({
      description: 'Browser origins allowed to call with credentials (CORS).',
      resolve: (client) => [...client.allowedOrigins],
    }),
    scopes: t.stringList({
      description:
        'The scopes its tokens may carry: API scopes, and for a CONFIDENTIAL client sessions:feed, users:read.',
      resolve: (client) => [...client.scopes],
    }),
    disabled: t.exposeBoolean('disabled'),
    createdAt: t.field({ type: 'DateTime', resolve: (client) => new Date(client.createdAt) }),
  }),
});

const ClientCredentialsType = builder.objectRef<ClientCredentials>('ClientCredentials').implement({
  description: 'A client and its secret, which is shown here once (CONFIDENTIAL clients only).',
  fields: (t) => ({
    client: t.field({ type: ClientObjectType, resolve: (credentials) => credentials.client }),
    clientSecret: t.exposeString('clientSecret', {
      nullable: true,
      description:
        'The secret (43 base64url characters); null for a PUBLIC client. Store it now: it is never shown again.',
    }),
  }),
});

const listFields = {
  audiences: 'The aud of its tokens; left out or empty: the configured AUDIENCE.',
  redirectUris: 'Exact OAuth redirect URIs: https (http only on localhost), no query or fragment.',
  allowedOrigins: 'Browser origins (https://host[:port]) allowed to call with credentials.',
  scopes: 'API scopes its tokens may carry; a CONFIDENTIAL client may add sessions:feed and users:read.',
} as const;

const CreateClientInput = builder.inputType('CreateClientInput', {
  fields: (t) => ({
    id: t.id({ description: '3-64 of [a-z0-9-]; BAD_USER_INPUT (field id) when taken.' }),
    name: t.string({ description: '1 to 200 characters.' }),
    type: t.field({ type: ClientTypeEnum }),
    audiences: t.stringList({ required: false, description: listFields.audiences }),
    redirectUris: t.stringList({ required: false, description: listFields.redirectUris }),
    allowedOrigins: t.stringList({ required: false, description: listFields.allowedOrigins }),
    scopes: t.stringList({ required: false, description: listFields.scopes }),
  }),
});

const UpdateClientInput = builder.inputType('UpdateClientInput', {
  description: 'What to change; a field left out stays as it is, a list given replaces the whole list.',
  fields: (t) => ({
    name: t.string({ required: false }),
    audiences: t.stringList({ required: false, description: listFields.audiences }),
    redirectUris: t.stringList({ required: false, description: listFields.redirectUris }),
    allowedOrigins: t.stringList({ required: false, description: listFields.allowedOrigins }),
    scopes: t.stringList({ required: false, description: listFields.scopes }),
  }),
});

builder.queryFields((t) => ({
  clients: t.field({
    type: [ClientObjectType],
    description: 'Every client, by id (scope clients:admin).',
    authScopes: { scope: 'clients:admin' },
    resolve: (_root, _args, context) => listClients(context.services),
  }),
  client: t.field({
    type: ClientObjectType,
    nullable: true,
    description: 'A client by id (scope clients:admin); null when there is none.',
    authScopes: { scope: 'clients:admin' },
    args: { id: t.arg.id() },
    resolve: (_root, { id }, context) => findClient(context.services, { id: String(id) }),
  }),
}));

builder.mutationFields((t) => ({
  createClient: t.field({
    type: ClientCredentialsType,
    description:
      'Registers a client (scope clients:admin); a CONFIDENTIAL one gets a secret, shown in the answer once.',
    authScopes: { scope: 'clients:admin' },
    args: { input: t.arg({ type: CreateClientInput }) },
    resolve: (_root, { input }, context) =>
      createClient(context.services, context.call, { ...input, id: String(input.id) }),
  }),
  updateClient: t.field({
    type: ClientObjectType,
    description:
      "Changes a client's name and lists (scope clients:admin). Scopes removed leave its sessions alone: tokens " +
      'issued from then on lack them.',
    authScopes: { scope: 'clients:admin' },
    args: { id: t.arg.id(), input: t.arg({ type: UpdateClientInput }) },
    resolve: (_root, { id, input }, context) =>
      updateClient(context.services, context.call, { id: String(id), changes: input }),
  }),
  rotateClientSecret: t.field({
    type: ClientCredentialsType,
    description:
      'Gives a CONFIDENTIAL client a new secret, shown in the answer once (scope clients:admin). The old secret, and ' +
      'every service token issued before, stop working at once on every instance (CLIENT_SECRET_ROTATED).',
    authScopes: { scope: 'clients:admin' },
    args: { id: t.arg.id() },
    resolve: (_root, { id }, context) => rotateClientSecret(context.services, context.call, { id: String(id) }),
  }),
  setClientDisabled: t.field({
    type: ClientObjectType,
    description:
      'Disables or enables a client (scope clients:admin). Disabling revokes every session of the client ' +
      '(CLIENT_DISABLED), refuses its tokens at once on every instance and its sign-ins; tokens issued before ' +
      'stay refused after enabling. The default client cannot be disabled.',
    authScopes: { scope: 'clients:admin' },
    args: { id: t.arg.id(), disabled: t.arg.boolean() },
    resolve: (_root, { id, disabled }, context) =>
      setClientDisabled(context.services, context.call, { id: String(id), disabled }),
  }),
}));
