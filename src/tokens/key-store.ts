// Loads (or, in development, generates once) the signing key and the previous keys still accepted and published.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { base64url, type CryptoKey, calculateJwkThumbprint, exportJWK, importPKCS8, importSPKI, type JWK } from 'jose';
import type { Config, JwtAlgorithm } from '../config.ts';
import { ensurePrivateDir, ensurePrivateFile, PRIVATE_FILE_MODE } from '../private-files.ts';

export interface VerificationKey {
  readonly kid: string;
  readonly alg: JwtAlgorithm;
  readonly key: CryptoKey | Uint8Array;
}

export interface SigningKey extends VerificationKey {}

export interface KeyStore {
  readonly signing: SigningKey;
  /** Every key a token may be signed with, by `kid`: the signing key first, then the previous ones. */
  readonly verification: ReadonlyMap<string, VerificationKey>;
  /** The pinned algorithms: only these are ever accepted. */
  readonly algorithms: readonly JwtAlgorithm[];
  /** The public JWK Set (empty for HS256, whose key is a shared secret). */
  readonly jwks: { readonly keys: readonly JWK[] };
}

export class KeyError extends Error {
  override name = 'KeyError';
}

/** The algorithm a key type is used with; EdDSA means Ed25519. */
function algorithmOf(key: KeyObject): JwtAlgorithm {
  switch (key.asymmetricKeyType) {
    case 'ed25519':
      return 'EdDSA';
    case 'ec':
      if (key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
      throw new KeyError('EC keys must be on P-256 (ES256)');
    case 'rsa':
      if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048)
        throw new KeyError('RSA keys must be 2048 bits or more');
      return 'RS256';
    default:
      throw new KeyError(`unsupported key type ${key.asymmetricKeyType}`);
  }
}

function generatePem(alg: Exclude<JwtAlgorithm, 'HS256'>): string {
  const key =
    alg === 'EdDSA'
      ? generateKeyPairSync('ed25519').privateKey
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
        : generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** Reads the development key kept under the data directory, creating it on first use. */
function developmentKey(config: Config): string {
  const path = join(config.dataDir, `dev-signing-key.${config.jwt.alg.toLowerCase()}.pem`);
  if (existsSync(path)) {
    // One written by an older version (or a copy) may be readable by others: take that away first.
    ensurePrivateFile(path);
    return readFileSync(path, 'utf8');
  }
  ensurePrivateDir(config.dataDir);
  const material = config.jwt.alg === 'HS256' ? randomBytes(32).toString('base64url') : generatePem(config.jwt.alg);
  writeFileSync(path, material, { mode: PRIVATE_FILE_MODE });
  return material;
}

async function publicKeyOf(keyObject: KeyObject, alg: JwtAlgorithm) {
  // createPublicKey refuses a KeyObject that is already public (JWT_PREVIOUS_KEYS may hold public PEMs).
  const publicObject = keyObject.type === 'public' ? keyObject : createPublicKey(keyObject);
  const spki = publicObject.export({ type: 'spki', format: 'pem' }).toString();
  const key = await importSPKI(spki, alg, { extractable: true });
  const jwk = await exportJWK(key);
  const kid = await calculateJwkThumbprint(jwk);
  return { key, kid, jwk: { ...jwk, kid, alg, use: 'sig' } as JWK };
}

function splitPemBlocks(text: string): string[] {
  return text.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? [];
}

function parseKeyObject(pem: string, label: string): KeyObject {
  try {
    return pem.includes('PRIVATE KEY') ? createPrivateKey(pem) : createPublicKey(pem);
  } catch {
    throw new KeyError(`${label}: not a valid PEM key`);
  }
}

export async function loadKeyStore(config: Config): Promise<KeyStore> {
  const { alg } = config.jwt;
  const material = config.jwt.privateKey ?? developmentKey(config);
  const verification = new Map<string, VerificationKey>();
  const jwks: JWK[] = [];
  let signing: SigningKey;

  if (alg === 'HS256') {
    const secret = new TextEncoder().encode(material.trim());
    const kid = base64url.encode(createHash('sha256').update('kid:').update(secret).digest()).slice(0, 22);
    signing = { kid, alg, key: secret };
    verification.set(kid, signing);
  } else {
    const privateObject = parseKeyObject(material, 'JWT_PRIVATE_KEY');
    if (privateObject.type !== 'private') throw new KeyError('JWT_PRIVATE_KEY: expected a PKCS#8 private key');
    if (algorithmOf(privateObject) !== alg) {
      throw new KeyError(`JWT_PRIVATE_KEY: the key is not an ${alg} key (JWT_ALG=${alg})`);
    }
    const pkcs8 = privateObject.export({ type: 'pkcs8', format: 'pem' }).toString();
    const { kid, jwk, key } = await publicKeyOf(privateObject, alg);
    signing = { kid, alg, key: await importPKCS8(pkcs8, alg) };
    verification.set(kid, { kid, alg, key });
    jwks.push(jwk);
  }

  for (const pem of splitPemBlocks(config.jwt.previousKeys ?? '')) {
    const keyObject = parseKeyObject(pem, 'JWT_PREVIOUS_KEYS');
    const previousAlg = algorithmOf(keyObject);
    const { key, kid, jwk } = await publicKeyOf(keyObject, previousAlg);
    if (verification.has(kid)) continue;
    verification.set(kid, { kid, alg: previousAlg, key });
    jwks.push(jwk);
  }

  const algorithms = [...new Set([...verification.values()].map((k) => k.alg))];
  return Object.freeze({ signing, verification, algorithms, jwks: Object.freeze({ keys: Object.freeze(jwks) }) });
}
