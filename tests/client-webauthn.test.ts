// The client package's WebAuthn bridge (packages/client/src/webauthn.ts) as pure functions: the options the server
// makes (@simplewebauthn/server's generate*Options) turned into what navigator.credentials takes, and credentials
// shaped as browsers return them turned into RegistrationResponseJSON / AuthenticationResponseJSON; compared with
// @simplewebauthn/browser v14 (the reference) on the same input, and on the inputs where real browsers differ.
import { runInNewContext } from 'node:vm';
import { startAuthentication, startRegistration } from '@simplewebauthn/browser';
import { generateAuthenticationOptions, generateRegistrationOptions } from '@simplewebauthn/server';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createAuthClient, PasskeyError } from '../packages/client/src/index.ts';
import {
  authenticationJSON,
  type CreationOptionsJSON,
  creationOptions,
  fromBase64Url,
  type RequestOptionsJSON,
  registrationJSON,
  requestOptions,
  toBase64Url,
} from '../packages/client/src/webauthn.ts';

/** Bytes whose base64 has '+', '/' and padding: 0xfb 0xff → "-_8" in base64url. */
const awkward = (length: number, seed = 0) =>
  Uint8Array.from({ length }, (_, i) => [0xfb, 0xff, 0xbf, 0x3e, seed, i][i % 6] ?? 0).buffer;

const hex = (buffer: ArrayBuffer) => Buffer.from(buffer).toString('hex');

/** The value with every ArrayBuffer as { bytes: hex }, so that equality compares contents. */
function plain(value: unknown): unknown {
  if (value instanceof ArrayBuffer) return { bytes: hex(value) };
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([key, member]) => [key, plain(member)]));
  return value;
}

const rawId = awkward(20, 1);
const CREDENTIAL_ID = Buffer.from(rawId).toString('base64url');

/** A credential of navigator.credentials.create as a Level 3 browser returns it. */
function registrationCredential(response: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return {
    id: CREDENTIAL_ID,
    rawId,
    type: 'public-key',
    authenticatorAttachment: 'platform',
    getClientExtensionResults: () => ({ credProps: { rk: true } }),
    response: {
      clientDataJSON: new TextEncoder().encode('{"type":"webauthn.create","challenge":"x"}').buffer,
      attestationObject: awkward(67, 2),
      getTransports: () => ['hybrid', 'internal'],
      getPublicKeyAlgorithm: () => -7,
      getPublicKey: () => awkward(91, 3),
      getAuthenticatorData: () => awkward(37, 4),
      ...response,
    },
    ...extra,
  };
}

/** A credential of navigator.credentials.get as a browser returns it. */
function assertionCredential(userHandle: ArrayBuffer | null | undefined, extra: Record<string, unknown> = {}) {
  return {
    id: CREDENTIAL_ID,
    rawId,
    type: 'public-key',
    authenticatorAttachment: 'cross-platform',
    getClientExtensionResults: () => ({}),
    response: {
      clientDataJSON: new TextEncoder().encode('{"type":"webauthn.get","challenge":"y"}').buffer,
      authenticatorData: awkward(37, 5),
      signature: awkward(71, 6),
      ...(userHandle === undefined ? {} : { userHandle }),
    },
    ...extra,
  };
}

const registrationOptions = () =>
  generateRegistrationOptions({
    rpName: 'Example',
    rpID: 'example.com',
    userName: 'ada@example.com',
    userID: new TextEncoder().encode('0b5e6c1e-5e5c-4c53-9c0f-6f1f2a0d9b11'),
    userDisplayName: 'Ada',
    attestationType: 'none',
    excludeCredentials: [
      { id: CREDENTIAL_ID, transports: ['internal', 'hybrid'] },
      { id: Buffer.from(awkward(16, 9)).toString('base64url') },
    ],
    authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
  });

const assertionOptions = (allowed: boolean) =>
  generateAuthenticationOptions({
    rpID: 'example.com',
    userVerification: 'required',
    allowCredentials: allowed ? [{ id: CREDENTIAL_ID, transports: ['usb', 'nfc'] }] : [],
  });

/**
 * Runs the reference (@simplewebauthn/browser) against a navigator.credentials that records the options it is
 * given and answers `credential`.
 */
async function reference<T>(run: () => Promise<T>, credential: unknown): Promise<{ json: T; publicKey: unknown }> {
  let publicKey: unknown;
  const answer = async (options: { publicKey: unknown }) => {
    publicKey = options.publicKey;
    return credential;
  };
  vi.stubGlobal('PublicKeyCredential', function PublicKeyCredential() {});
  vi.stubGlobal('navigator', { credentials: { create: answer, get: answer } });
  const json = await run();
  return { json, publicKey };
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('the client package’s WebAuthn bridge', () => {
  it('turns the server’s registration options into what create() takes, as the reference does', async () => {
    const json = await registrationOptions();
    const original = structuredClone(json);
    const ours = creationOptions(json as unknown as CreationOptionsJSON);
    const { publicKey } = await reference(() => startRegistration({ optionsJSON: json }), registrationCredential());
    expect(plain(ours)).toEqual(plain(publicKey));
    // And concretely: bytes where the standard wants bytes, every other member (rp, pubKeyCredParams,
    // authenticatorSelection, attestation, extensions.credProps, hints) as the server gave it.
    expect(plain(ours)).toMatchObject({
      challenge: { bytes: hex(fromBase64Url(json.challenge)) },
      user: {
        id: { bytes: Buffer.from('0b5e6c1e-5e5c-4c53-9c0f-6f1f2a0d9b11').toString('hex') },
        name: 'ada@example.com',
      },
      excludeCredentials: [
        { id: { bytes: hex(rawId) }, type: 'public-key', transports: ['internal', 'hybrid'] },
        { id: { bytes: hex(awkward(16, 9)) }, type: 'public-key' },
      ],
      attestation: 'none',
      authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
      extensions: { credProps: true },
    });
    expect(json).toEqual(original);
  });

  it('turns assertion options into what get() takes, as the reference does; an empty allow list is left out', async () => {
    for (const allowed of [true, false]) {
      const json = await assertionOptions(allowed);
      const ours = requestOptions(json as unknown as RequestOptionsJSON);
      const { publicKey } = await reference(
        () => startAuthentication({ optionsJSON: json }),
        assertionCredential(null),
      );
      expect(plain(ours)).toEqual(plain(publicKey));
      expect((ours as { allowCredentials?: unknown }).allowCredentials === undefined).toBe(!allowed);
    }
  });

  it('makes the reference’s RegistrationResponseJSON of a Level 3 credential (transports, key, credProps)', async () => {
    const credential = registrationCredential();
    const { json } = await reference(
      () =>
        startRegistration({
          optionsJSON: { challenge: 'AAAA', user: { id: 'AA', name: 'a', displayName: 'a' } } as never,
        }),
      credential,
    );
    const ours = registrationJSON(credential);
    expect(JSON.parse(JSON.stringify(ours))).toEqual(JSON.parse(JSON.stringify(json)));
    expect(JSON.parse(JSON.stringify(ours))).toEqual({
      id: CREDENTIAL_ID,
      rawId: CREDENTIAL_ID,
      type: 'public-key',
      response: {
        clientDataJSON: expect.stringMatching(/^[\w-]+$/),
        attestationObject: Buffer.from(awkward(67, 2)).toString('base64url'),
        transports: ['hybrid', 'internal'],
        publicKeyAlgorithm: -7,
        publicKey: Buffer.from(awkward(91, 3)).toString('base64url'),
        authenticatorData: Buffer.from(awkward(37, 4)).toString('base64url'),
      },
      clientExtensionResults: { credProps: { rk: true } },
      authenticatorAttachment: 'platform',
    });
  });

  it('leaves out what a Level 2 browser or a broken passkey extension lacks, rather than failing', () => {
    const level2 = registrationCredential({
      getTransports: undefined,
      getPublicKeyAlgorithm: undefined,
      getPublicKey: undefined,
      getAuthenticatorData: undefined,
    });
    const broken = () => {
      throw new TypeError('Illegal invocation');
    };
    const extension = registrationCredential({
      getTransports: broken,
      getPublicKeyAlgorithm: broken,
      getPublicKey: broken,
      getAuthenticatorData: broken,
    });
    // getPublicKey is null for an algorithm the browser cannot express in SPKI.
    const noKey = registrationCredential({ getPublicKey: () => null });
    for (const credential of [level2, extension]) {
      expect(Object.keys(JSON.parse(JSON.stringify(registrationJSON(credential))).response)).toEqual([
        'clientDataJSON',
        'attestationObject',
      ]);
    }
    expect(JSON.parse(JSON.stringify(registrationJSON(noKey))).response).not.toHaveProperty('publicKey');
  });

  it('sends only the standard’s authenticatorAttachment values', () => {
    for (const [given, sent] of [
      ['platform', 'platform'],
      ['cross-platform', 'cross-platform'],
      [null, undefined],
      [undefined, undefined],
      ['hybrid', undefined],
    ] as const) {
      expect(
        authenticationJSON(assertionCredential(null, { authenticatorAttachment: given })).authenticatorAttachment,
      ).toBe(sent);
    }
  });

  it('makes the reference’s AuthenticationResponseJSON; a null user handle is left out, a present one encoded', async () => {
    for (const userHandle of [null, undefined, new TextEncoder().encode('0b5e6c1e-5e5c').buffer]) {
      const credential = assertionCredential(userHandle);
      const { json } = await reference(() => startAuthentication({ optionsJSON: { challenge: 'AAAA' } }), credential);
      const ours = JSON.parse(JSON.stringify(authenticationJSON(credential)));
      expect(ours).toEqual(JSON.parse(JSON.stringify(json)));
      expect(ours.response).toEqual({
        clientDataJSON: expect.stringMatching(/^[\w-]+$/),
        authenticatorData: Buffer.from(awkward(37, 5)).toString('base64url'),
        signature: Buffer.from(awkward(71, 6)).toString('base64url'),
        ...(userHandle ? { userHandle: Buffer.from(userHandle).toString('base64url') } : {}),
      });
    }
  });

  it('leaves out an empty user handle (the standard allows null, never empty; the server refuses "")', () => {
    const ours = JSON.parse(JSON.stringify(authenticationJSON(assertionCredential(new ArrayBuffer(0)))));
    expect(ours.response).not.toHaveProperty('userHandle');
  });

  it('encodes base64url without padding and decodes it with or without, from any ArrayBuffer or view', () => {
    for (const length of [0, 1, 2, 3, 4, 31, 32, 33]) {
      const buffer = awkward(length, length);
      const encoded = toBase64Url(buffer);
      expect(encoded).toBe(Buffer.from(buffer).toString('base64url'));
      expect(encoded).toMatch(/^[\w-]*$/);
      expect(hex(fromBase64Url(encoded))).toBe(hex(buffer));
      const padded = Buffer.from(buffer).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
      expect(hex(fromBase64Url(padded))).toBe(hex(buffer));
      // Plain base64 too: the same bytes.
      expect(hex(fromBase64Url(Buffer.from(buffer).toString('base64')))).toBe(hex(buffer));
    }
    // A view onto part of a larger buffer: only its bytes.
    const whole = new Uint8Array([9, 0xfb, 0xff, 0xbf, 9]);
    expect(toBase64Url(whole.subarray(1, 4))).toBe('-_-_');
    expect(toBase64Url(new DataView(whole.buffer, 1, 3))).toBe('-_-_');
    // An ArrayBuffer of another realm (another frame's): its bytes, not none.
    const foreign = runInNewContext('new Uint8Array([0xfb, 0xff, 0xbf]).buffer') as ArrayBuffer;
    expect(foreign instanceof ArrayBuffer).toBe(false);
    expect(toBase64Url(foreign)).toBe('-_-_');
    // Anything else is no bytes at all, not a guess at some.
    for (const value of [7, 'AAAA', null, undefined, {}, [1, 2]])
      expect(() => toBase64Url(value as never)).toThrow(TypeError);
  });

  it('fails on a string that is not base64url rather than decoding something else', () => {
    for (const text of ['a', 'ab$d', 'ab cd!']) expect(() => fromBase64Url(text)).toThrow();
  });

  it('rejects a credential not shaped as the standard’s with PASSKEY_FAILED and sends no answer', async () => {
    // The server's side of startPasskeyLogin is beside the point here: a fixed answer, and a record of what is sent.
    const sent: string[] = [];
    const fetch = async (_url: unknown, init?: { body?: unknown }) => {
      sent.push(String(/mutation (\w+)/.exec(String(init?.body))?.[1]));
      const data = { startPasskeyLogin: { challengeId: 'c', options: await assertionOptions(false) } };
      return new Response(JSON.stringify({ data }), { headers: { 'content-type': 'application/json' } });
    };
    for (const credential of [{ id: CREDENTIAL_ID, type: 'public-key' }, assertionCredential(null, { rawId: 7 })]) {
      sent.length = 0;
      await reference(async () => {
        const auth = createAuthClient({ url: 'http://127.0.0.1:9/graphql', fetch, webSocketImpl: null });
        const error = await auth.loginWithPasskey().then(
          () => null,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(PasskeyError);
        expect((error as PasskeyError).code).toBe('PASSKEY_FAILED');
        expect((error as PasskeyError).cause).toBeInstanceOf(TypeError);
      }, credential);
      expect(sent).toEqual(['StartPasskeyLogin']);
    }
  });
});
