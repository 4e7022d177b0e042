// The MFA key's two uses: AES-256-GCM for TOTP secrets at rest, and HMAC-SHA-256 for recovery codes, each with
// its own subkey (HKDF), so that neither use can be turned against the other.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

const IV_BYTES = 12;
const TAG_BYTES = 16;

const subkey = (key: Buffer, purpose: string) => Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), purpose, 32));

export class MfaCrypto {
  readonly #loadKey: () => Buffer;
  #keys: { readonly secret: Buffer; readonly code: Buffer } | undefined;

  /**
   * `loadKey` is called on first use, not at start: an instance without a key (see key.ts) serves everything
   * but the uses of the key, which then fail as internal errors rather than fall back to a weaker key.
   */
  constructor(loadKey: () => Buffer) {
    this.#loadKey = loadKey;
  }

  get #secretKey(): Buffer {
    return this.#derived().secret;
  }

  get #codeKey(): Buffer {
    return this.#derived().code;
  }

  #derived() {
    if (!this.#keys) {
      const key = this.#loadKey();
      if (key.length !== 32) throw new Error('The MFA key must be 32 bytes');
      this.#keys = {
        secret: subkey(key, 'graphql-auth mfa totp-secret v1'),
        code: subkey(key, 'graphql-auth mfa recovery-code v1'),
      };
    }
    return this.#keys;
  }

  /**
   * base64url(iv ‖ ciphertext ‖ tag) of `secret`, bound to `userId` (additional data): a row copied to another
   * user does not decrypt.
   */
  sealSecret(secret: string, userId: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#secretKey, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(userId));
    const body = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
  }

  /**
   * The secret sealed by `sealSecret` for `userId`. A wrong key, a tampered row or another user's row throws a
   * plain Error (an internal error: masked for the client) that quotes nothing of the row.
   */
  openSecret(sealed: string, userId: string): string {
    const bytes = Buffer.from(sealed, 'base64url');
    if (bytes.length <= IV_BYTES + TAG_BYTES) throw new Error('A stored TOTP secret is malformed');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#secretKey, bytes.subarray(0, IV_BYTES), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(Buffer.from(userId));
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      return Buffer.concat([
        decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)),
        decipher.final(),
      ]).toString('utf8');
    } catch {
      // Never the cause: it could carry bytes of the row.
      throw new Error('A stored TOTP secret could not be decrypted (was MFA_ENCRYPTION_KEY changed?)');
    }
  }

  /** HMAC-SHA-256 (hex) of a normalised recovery code, bound to its user. */
  hashRecoveryCode(userId: string, code: string): string {
    return createHmac('sha256', this.#codeKey).update(`${userId}:${code}`).digest('hex');
  }
}
