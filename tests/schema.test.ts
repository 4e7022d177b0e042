import { readFileSync } from 'node:fs';
import { buildSchema as buildFromSdl, findBreakingChanges } from 'graphql';
import { describe, expect, it } from 'vitest';
import { buildSchema, printSchemaSdl } from '../src/schema/index.ts';

describe('schema.graphql', () => {
  it('matches the schema printed from the code (run `npm run schema:print` after changing it)', () => {
    const committed = readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8');
    expect(committed).toBe(printSchemaSdl());
  });

  it('has every type, field and argument of the API.md contract, with the same types', () => {
    const contract = buildFromSdl(`
      scalar DateTime
      scalar JSON
      enum Role { USER ADMIN }
      enum RevocationReason { LOGOUT REVOKED_BY_USER REVOKED_BY_ADMIN PASSWORD_CHANGED PASSWORD_RESET REFRESH_TOKEN_REUSE ACCOUNT_DELETED }
      type User {
        id: ID! email: String! emailVerified: Boolean! displayName: String roles: [Role!]! createdAt: DateTime!
        linkedAccounts: [LinkedAccount!]! sessions: [Session!]! disabled: Boolean!
      }
      type LinkedAccount { provider: String! providerUserId: String! email: String linkedAt: DateTime! }
      type Session { id: ID! createdAt: DateTime! lastUsedAt: DateTime! expiresAt: DateTime! userAgent: String ipAddress: String current: Boolean! }
      type AuthPayload {
        accessToken: String! accessTokenExpiresAt: DateTime! refreshToken: String refreshTokenExpiresAt: DateTime!
        tokenType: String! user: User! session: Session!
      }
      type OAuthProvider { id: String! name: String! }
      type OAuthStart { authorizationUrl: String! state: String! }
      type SessionRevocation { sessionId: ID! reason: RevocationReason! revokedAt: DateTime! }
      type UserConnection { edges: [UserEdge!]! pageInfo: PageInfo! totalCount: Int! }
      type UserEdge { cursor: String! node: User! }
      type PageInfo { hasNextPage: Boolean! endCursor: String }
      enum TokenDelivery { BODY COOKIE }
      input RegisterInput { email: String! password: String! displayName: String tokenDelivery: TokenDelivery = BODY }
      input LoginInput { email: String! password: String! tokenDelivery: TokenDelivery = BODY }
      input OAuthCodeInput { provider: String! code: String! state: String! tokenDelivery: TokenDelivery = BODY }
      input ResetPasswordInput { email: String! code: String! newPassword: String! }
      input ChangePasswordInput { currentPassword: String! newPassword: String! }
      input UpdateProfileInput { displayName: String }
      type Query {
        me: User
        myData: JSON!
        oauthProviders: [OAuthProvider!]!
        user(id: ID!): User
        users(first: Int = 20, after: String, query: String): UserConnection!
      }
      type Mutation {
        register(input: RegisterInput!): AuthPayload!
        login(input: LoginInput!): AuthPayload!
        refresh(refreshToken: String): AuthPayload!
        logout: Boolean!
        revokeSession(id: ID!): Boolean!
        revokeOtherSessions: Int!
        startOAuth(provider: String!, redirectUri: String!): OAuthStart!
        loginWithOAuth(input: OAuthCodeInput!): AuthPayload!
        linkOAuthProvider(input: OAuthCodeInput!): User!
        unlinkOAuthProvider(provider: String!): User!
        requestEmailVerification: Boolean!
        verifyEmail(code: String!): User!
        requestPasswordReset(email: String!): Boolean!
        resetPassword(input: ResetPasswordInput!): Boolean!
        changePassword(input: ChangePasswordInput!): AuthPayload!
        updateProfile(input: UpdateProfileInput!): User!
        deleteAccount(password: String): Boolean!
        setUserRoles(userId: ID!, roles: [Role!]!): User!
        revokeUserSessions(userId: ID!): Int!
        setUserDisabled(userId: ID!, disabled: Boolean!): User!
      }
      type Subscription { sessionRevoked: SessionRevocation! }
    `);
    // Everything in the contract must exist in ours with the same types: "breaking" means we dropped or changed it.
    expect(findBreakingChanges(contract, buildSchema())).toEqual([]);
    // findBreakingChanges calls a changed default "dangerous", not breaking: check the one API.md fixes.
    expect(
      buildSchema()
        .getQueryType()
        ?.getFields()
        .users?.args.find((a) => a.name === 'first')?.defaultValue,
    ).toBe(20);
  });
});
