// Assertions shared by the suites.
import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'vitest';
import type { GraphQLResponse } from './graphql.ts';

/** Expects exactly one error, UNAUTHENTICATED with this `reason`, and no data for any field asked. */
export function expectUnauthenticated(response: GraphQLResponse, reason: string) {
  expect(response.errors).toHaveLength(1);
  expect(response.errors?.[0]?.extensions).toEqual({ code: 'UNAUTHENTICATED', reason });
  expect(Object.values(response.data ?? {}).every((value) => value === null)).toBe(true);
}

/** A fresh Ed25519 signing key as a PKCS#8 PEM (for apps that must share a key). */
export const ed25519Pem = (): string =>
  generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
