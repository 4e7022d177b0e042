import { readFileSync } from 'node:fs';
import { buildSchema as buildFromSdl, findBreakingChanges } from 'graphql';
import { describe, expect, it } from 'vitest';
import { buildSchema, printSchemaSdl } from '../src/schema/index.ts';

describe('schema.graphql', () => {
  it('matches the schema printed from the code (run `npm run schema:print` after changing it)', () => {
    const committed = readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8');
    expect(committed).toBe(printSchemaSdl());
  });

  it('has the shapes API.md promises for the foundation', () => {
    const contract = buildFromSdl(`
      scalar DateTime
      enum Role { USER ADMIN }
      type User { id: ID! email: String! emailVerified: Boolean! displayName: String roles: [Role!]! createdAt: DateTime! sessions: [Session!]! }
      type Session { id: ID! createdAt: DateTime! lastUsedAt: DateTime! expiresAt: DateTime! userAgent: String ipAddress: String current: Boolean! }
      type AuthPayload { accessToken: String! accessTokenExpiresAt: DateTime! refreshToken: String! refreshTokenExpiresAt: DateTime! tokenType: String! user: User! session: Session! }
      input RegisterInput { email: String! password: String! displayName: String }
      input LoginInput { email: String! password: String! }
      input ChangePasswordInput { currentPassword: String! newPassword: String! }
      type Query { me: User }
      type Mutation {
        register(input: RegisterInput!): AuthPayload!
        login(input: LoginInput!): AuthPayload!
        refresh(refreshToken: String!): AuthPayload!
        logout: Boolean!
        revokeSession(id: ID!): Boolean!
        revokeOtherSessions: Int!
        changePassword(input: ChangePasswordInput!): AuthPayload!
      }
    `);
    // Everything in the contract must exist in ours with the same types: "breaking" means we dropped or changed it.
    expect(findBreakingChanges(contract, buildSchema())).toEqual([]);
  });
});
