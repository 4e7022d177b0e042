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

/**
 * Expects exactly one error and no data: with `expected` a code, that `extensions.code`; with an object, exactly
 * those extensions (and, when given, that message).
 */
export function expectError(response: GraphQLResponse, expected: string | Record<string, unknown>, message?: string) {
  expect(response.errors).toHaveLength(1);
  const extensions = response.errors?.[0]?.extensions;
  if (typeof expected === 'string') expect(extensions?.code).toBe(expected);
  else expect(extensions).toEqual(expected);
  if (message !== undefined) expect(response.errors?.[0]?.message).toBe(message);
  expect(response.data ?? null).toBeNull();
}

/** Expects RATE_LIMITED and no data, with a whole `retryAfter` of 1 to `maxSeconds` seconds. */
export function expectRateLimited(response: GraphQLResponse, maxSeconds: number) {
  expect(response.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
  const retryAfter = response.errors?.[0]?.extensions?.retryAfter;
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(maxSeconds);
  expect(response.data ?? null).toBeNull();
}

/** A fresh Ed25519 signing key as a PKCS#8 PEM (for apps that must share a key). */
export const ed25519Pem = (): string =>
  generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
