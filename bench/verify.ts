// verify() throughput of the verifier package (graphql-auth-verifier, its built dist) against bare jose jwtVerify
// with the same key (a local JWKS) and options, in one process: one token, and distinct tokens round-robin.
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  importPKCS8,
  type JSONWebKeySet,
  jwtVerify,
  SignJWT,
} from 'jose';

/** The package's verify() must reach this share of bare jose's rate (issue 15). */
export const VERIFY_TARGET = 0.9;
/** Each side is measured in this many alternating slices, so that a noisy moment costs both alike. */
const SLICES = 4;
/** performance.now() is read once per this many calls (cheap, but a cached verify is cheap too); rates use the time. */
const CALLS_PER_CLOCK_READ = 16;

export interface VerifyThroughputSetUp {
  /** The package's verify (a verifier connected to the server's feed). */
  readonly verify: (token: string) => Promise<unknown>;
  readonly jwks: JSONWebKeySet;
  readonly issuer: string;
  readonly audience: string;
  /** A valid token the server issued (a user's access token). */
  readonly token: string;
  /** The server's signing key (PKCS#8 PEM, EdDSA): copies of `token` with their own jti for the round-robin rows. */
  readonly privateKey: string;
  /** Measured seconds per side per row (plus a warm-up of half a second each). */
  readonly seconds: number;
  /** Distinct-token rows: this many tokens each (1,000 stays inside the package's 10,000-token cache). */
  readonly distinct: readonly number[];
  readonly log: (message: string) => void;
}

export interface VerifyThroughputRow {
  readonly tokens: number;
  /** Calls per second of the package's verify(). */
  readonly verifier: number;
  /** Calls per second of bare jose jwtVerify. */
  readonly jose: number;
}

/** Calls `call(i)` from i = `start`, one at a time (awaited), for at least `ms`: how many, and in how long. */
async function run(
  call: (i: number) => Promise<unknown>,
  ms: number,
  start: number,
): Promise<{ calls: number; elapsed: number }> {
  let i = start;
  const began = performance.now();
  for (;;) {
    for (let n = 0; n < CALLS_PER_CLOCK_READ; n++) await call(i++);
    const elapsed = performance.now() - began;
    if (elapsed >= ms) return { calls: i - start, elapsed };
  }
}

/**
 * Copies of `token` (same header and claims, a fresh jti each), signed with the server's key: what `count` sign-ins
 * would give the verifier, without the bcrypt.
 */
async function copiesOf(token: string, privateKey: string, count: number): Promise<string[]> {
  const header = decodeProtectedHeader(token);
  const key = await importPKCS8(privateKey, header.alg as string);
  const claims = decodeJwt(token);
  return Promise.all(
    Array.from({ length: count }, () =>
      new SignJWT({ ...claims, jti: crypto.randomUUID() }).setProtectedHeader(header as never).sign(key),
    ),
  );
}

/** One row per token set: the package's verify() and jose's jwtVerify, alternating slices, the same tokens in turn. */
export async function measureVerifyThroughput(setUp: VerifyThroughputSetUp): Promise<VerifyThroughputRow[]> {
  // The package's options (verify-token.ts), so that both sides check the same things.
  const options = {
    algorithms: ['EdDSA'],
    issuer: setUp.issuer,
    audience: setUp.audience,
    typ: 'at+jwt',
    clockTolerance: 5,
    requiredClaims: ['sub', 'client_id', 'jti', 'iat', 'exp', 'scope'],
  };
  const getKey = createLocalJWKSet(setUp.jwks);
  const rows: VerifyThroughputRow[] = [];
  for (const count of [1, ...setUp.distinct]) {
    const tokens = count === 1 ? [setUp.token] : await copiesOf(setUp.token, setUp.privateKey, count);
    const pick = (i: number) => tokens[i % tokens.length] as string;
    // Both must accept every token, or the rates would be about refusals.
    for (const token of tokens) {
      await setUp.verify(token);
      await jwtVerify(token, getKey, options);
    }
    const sides = {
      verifier: (i: number) => setUp.verify(pick(i)),
      jose: (i: number) => jwtVerify(pick(i), getKey, options),
    };
    setUp.log(`verify(): ${count} token(s), ${setUp.seconds} s per side in ${SLICES} alternating slices`);
    const sliceMs = (1000 * setUp.seconds) / SLICES;
    const calls = { verifier: 0, jose: 0 };
    const elapsed = { verifier: 0, jose: 0 };
    // Where each side is in the token list (round-robin carries on across slices).
    const next = { verifier: 0, jose: 0 };
    for (const side of ['verifier', 'jose'] as const) next[side] += (await run(sides[side], 500, 0)).calls;
    for (let slice = 0; slice < SLICES; slice++) {
      // Alternate which side goes first, so that neither always runs right after the other's garbage.
      const order = slice % 2 === 0 ? (['verifier', 'jose'] as const) : (['jose', 'verifier'] as const);
      for (const side of order) {
        const measured = await run(sides[side], sliceMs, next[side]);
        calls[side] += measured.calls;
        elapsed[side] += measured.elapsed;
        next[side] += measured.calls;
      }
    }
    rows.push({
      tokens: count,
      verifier: (1000 * calls.verifier) / elapsed.verifier,
      jose: (1000 * calls.jose) / elapsed.jose,
    });
  }
  return rows;
}

/** Prints the rows, their ratio and the target. */
export function printVerifyThroughput(rows: readonly VerifyThroughputRow[], seconds: number): void {
  const count = (n: number) => Math.round(n).toLocaleString('en-US');
  const header = ['tokens', 'verifier ops/s', 'jose ops/s', 'ratio', 'target'];
  const cells = rows.map((row) => {
    const ratio = row.verifier / row.jose;
    return [
      row.tokens === 1 ? 'one token' : `${count(row.tokens)} distinct, round-robin`,
      count(row.verifier),
      count(row.jose),
      // Rounded down: a ratio just under the target must not print as the target itself (0.8989 as 0.90×).
      `${(Math.floor(ratio * 100) / 100).toFixed(2)}×`,
      `≥ ${VERIFY_TARGET}×: ${ratio >= VERIFY_TARGET ? 'MET' : 'NOT MET'}`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) => `| ${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  console.log(
    `\nverify() throughput: graphql-auth-verifier's verify(token) (connected to the feed, JWKS fetched once) vs bare ` +
      `jose jwtVerify with a local JWKS of the same key and the same options, one call at a time, ${seconds} s each ` +
      `in ${SLICES} alternating slices\n`,
  );
  console.log([line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n'));
  console.log(
    '\nThe package remembers verified tokens by their text (10,000 at most, oldest out first): one token and 1,000 ' +
      'round-robin are cache hits after the first call (expiry and revocation still checked each time); past ' +
      '10,000 round-robin every call misses the cache, a full signature check plus the package’s own checks. ' +
      'The distinct tokens are copies of a server-issued token with their own jti, signed with the server’s key.',
  );
}
