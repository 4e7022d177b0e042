// Reads an access token's claims the way another service would: fast-jwt (not our jose) with the key our JWKS
// publishes for the token's kid, pinning the algorithm, typ, issuer and audience.
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { createVerifier } from 'fast-jwt';

/** The verified claims of `token`, issued by the service at `baseUrl` for `audience`; throws when it does not verify. */
export async function verifiedClaims(
  baseUrl: string,
  token: string,
  options: { issuer?: string; audience?: string } = {},
): Promise<Record<string, unknown>> {
  const { keys } = (await (await fetch(`${baseUrl}/.well-known/jwks.json`)).json()) as {
    keys: (JsonWebKey & { kid: string; alg: string })[];
  };
  const kid = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')).kid;
  const jwk = keys.find((key) => key.kid === kid);
  if (!jwk) throw new Error(`no key ${kid} in the JWKS`);
  const verify = createVerifier({
    key: createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString(),
    algorithms: [jwk.alg as 'EdDSA'],
    allowedIss: options.issuer ?? 'https://auth.test',
    allowedAud: options.audience ?? 'https://api.test',
    checkTyp: 'at+jwt',
  });
  return verify(token) as Record<string, unknown>;
}
