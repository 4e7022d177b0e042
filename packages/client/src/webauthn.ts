// WebAuthn's JSON forms ⇄ navigator.credentials' ArrayBuffers, for the passkey helpers: our own, not a dependency
// that logs (@simplewebauthn/browser) nor PublicKeyCredential's JSON methods (absent in Safari < 18, Firefox < 119).

/** A PublicKeyCredentialDescriptorJSON: a credential id (base64url) the ceremony may use or must not reuse. */
interface DescriptorJSON {
  readonly id: string;
  readonly type: string;
  readonly transports?: readonly string[];
}

/** A PublicKeyCredentialCreationOptionsJSON, as the server's startPasskeyRegistration answers it. */
export interface CreationOptionsJSON {
  readonly challenge: string;
  readonly user: { readonly id: string; readonly name: string; readonly displayName: string };
  readonly excludeCredentials?: readonly DescriptorJSON[];
  readonly [member: string]: unknown;
}

/** A PublicKeyCredentialRequestOptionsJSON, as startPasskeyLogin and MFA_REQUIRED carry it. */
export interface RequestOptionsJSON {
  readonly challenge: string;
  readonly allowCredentials?: readonly DescriptorJSON[];
  readonly [member: string]: unknown;
}

/** What navigator.credentials answers with, and the methods of its response this bridge reads. */
interface Credential {
  readonly id: string;
  readonly rawId: ArrayBuffer;
  readonly type: string;
  readonly authenticatorAttachment?: string | null;
  getClientExtensionResults(): Record<string, unknown>;
  readonly response: {
    readonly clientDataJSON: ArrayBuffer;
    // Registration (AuthenticatorAttestationResponse).
    readonly attestationObject?: ArrayBuffer;
    getTransports?(): string[];
    getPublicKeyAlgorithm?(): number;
    getPublicKey?(): ArrayBuffer | null;
    getAuthenticatorData?(): ArrayBuffer;
    // Authentication (AuthenticatorAssertionResponse).
    readonly authenticatorData?: ArrayBuffer;
    readonly signature?: ArrayBuffer;
    readonly userHandle?: ArrayBuffer | null;
  };
}

interface CredentialsContainer {
  create(options: { publicKey: unknown; signal?: AbortSignal }): Promise<unknown>;
  get(options: { publicKey: unknown; signal?: AbortSignal }): Promise<unknown>;
}

/** navigator.credentials where WebAuthn can run (a browser with PublicKeyCredential, in a secure context). */
export function webAuthnCredentials(): CredentialsContainer | null {
  const scope = globalThis as {
    PublicKeyCredential?: unknown;
    isSecureContext?: boolean;
    navigator?: { credentials?: CredentialsContainer };
  };
  if (typeof scope.PublicKeyCredential !== 'function' || scope.isSecureContext === false) return null;
  const credentials = scope.navigator?.credentials;
  return typeof credentials?.create === 'function' && typeof credentials.get === 'function' ? credentials : null;
}

/** Bytes as base64url without padding, WebAuthn's encoding of binary members in JSON. */
export function toBase64Url(buffer: ArrayBuffer | ArrayBufferView): string {
  // Not `instanceof ArrayBuffer`: an ArrayBuffer of another realm (an iframe's) fails it. Anything else is refused
  // (`new Uint8Array(7)` would be seven zero bytes), so a malformed credential fails its ceremony.
  const bytes = ArrayBuffer.isView(buffer)
    ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
    : Object.prototype.toString.call(buffer) === '[object ArrayBuffer]'
      ? new Uint8Array(buffer)
      : undefined;
  if (!bytes) throw new TypeError('Expected an ArrayBuffer or a view of one');
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The bytes of a base64url string (padded or not). */
export function fromBase64Url(text: string): ArrayBuffer {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(base64.padEnd(base64.length + ((4 - (base64.length % 4)) % 4), '='));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

const descriptor = (json: DescriptorJSON) => ({ ...json, id: fromBase64Url(json.id) });

/** PublicKeyCredentialCreationOptions for navigator.credentials.create. */
export function creationOptions(json: CreationOptionsJSON): unknown {
  return {
    ...json,
    challenge: fromBase64Url(json.challenge),
    user: { ...json.user, id: fromBase64Url(json.user.id) },
    excludeCredentials: json.excludeCredentials?.map(descriptor),
  };
}

/** PublicKeyCredentialRequestOptions for navigator.credentials.get; no allowCredentials: discoverable ones. */
export function requestOptions(json: RequestOptionsJSON): unknown {
  return {
    ...json,
    challenge: fromBase64Url(json.challenge),
    allowCredentials: json.allowCredentials?.length ? json.allowCredentials.map(descriptor) : undefined,
  };
}

/** Only the standard's two values; anything else (an extension's invention) is left out. */
const attachment = (value: string | null | undefined) =>
  value === 'platform' || value === 'cross-platform' ? value : undefined;

/** A getter that WebAuthn Level 3 added: absent in older browsers, and broken in some extensions' stand-ins. */
function optional<T>(read: (() => T) | undefined): T | undefined {
  try {
    return read?.();
  } catch {
    return undefined;
  }
}

/** RegistrationResponseJSON of navigator.credentials.create's credential, for finishPasskeyRegistration. */
export function registrationJSON(value: unknown): Record<string, unknown> {
  const credential = value as Credential;
  const { response } = credential;
  const publicKey = optional(response.getPublicKey?.bind(response));
  const authenticatorData = optional(response.getAuthenticatorData?.bind(response));
  return {
    id: credential.id,
    rawId: toBase64Url(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: toBase64Url(response.clientDataJSON),
      attestationObject: toBase64Url(response.attestationObject ?? new ArrayBuffer(0)),
      transports: optional(response.getTransports?.bind(response)),
      publicKeyAlgorithm: optional(response.getPublicKeyAlgorithm?.bind(response)),
      publicKey: publicKey ? toBase64Url(publicKey) : undefined,
      authenticatorData: authenticatorData ? toBase64Url(authenticatorData) : undefined,
    },
    clientExtensionResults: credential.getClientExtensionResults(),
    authenticatorAttachment: attachment(credential.authenticatorAttachment),
  };
}

/** AuthenticationResponseJSON of navigator.credentials.get's credential, for loginWithPasskey and verifyMfa. */
export function authenticationJSON(value: unknown): Record<string, unknown> {
  const credential = value as Credential;
  const { response } = credential;
  return {
    id: credential.id,
    rawId: toBase64Url(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: toBase64Url(response.clientDataJSON),
      authenticatorData: toBase64Url(response.authenticatorData ?? new ArrayBuffer(0)),
      signature: toBase64Url(response.signature ?? new ArrayBuffer(0)),
      // Absent unless the authenticator named the account: null, and also empty, which Safari answers for a
      // passkey on another device (hybrid) with allowCredentials; a user handle is never empty, and the server
      // refuses a userHandle that is not the account's.
      userHandle: response.userHandle?.byteLength ? toBase64Url(response.userHandle) : undefined,
    },
    clientExtensionResults: credential.getClientExtensionResults(),
    authenticatorAttachment: attachment(credential.authenticatorAttachment),
  };
}
