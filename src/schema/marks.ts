// Marks that root fields carry for the transport (Pothos field `extensions`), so that the HTTP plugins act on
// what a field is rather than on lists of field names: a new sign-in mutation is marked where it is defined.
import type { GraphQLField } from 'graphql';

/** How a sign-in is counted in the metrics (`mfa`: the second step, verifyMfa; `passkey`: loginWithPasskey). */
export type SignInKind = 'login' | 'oauth' | 'passkey' | 'mfa' | 'register' | 'refresh';

export interface FieldMarks {
  /** The field checks a password, a code or a refresh token: at most one such field per operation. */
  readonly credentialCheck?: true;
  /** The field signs someone in; its outcome is counted by kind. */
  readonly signIn?: SignInKind;
}

/** `extensions` for a field that checks a credential (and, when `signIn` is given, signs in). */
export const checksCredential = (signIn?: SignInKind): { readonly marks: FieldMarks } => ({
  marks: signIn ? { credentialCheck: true, signIn } : { credentialCheck: true },
});

/** `extensions` for a sign-in that checks no credential of ours (OAuth: the provider did). */
export const signsIn = (signIn: SignInKind): { readonly marks: FieldMarks } => ({ marks: { signIn } });

/** The marks of a schema field (none when it has none). */
export function marksOf(field: GraphQLField<unknown, unknown> | undefined): FieldMarks {
  return (field?.extensions as { marks?: FieldMarks } | undefined)?.marks ?? {};
}
