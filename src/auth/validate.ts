// Input rules of API.md ("Input integrity"): normalised emails, 8-72 byte passwords never normalised, display names
// of at most 100 code points without controls. The rule for every string (well-formed, no U+0000) is enforced for
// all arguments by src/http/use-input-integrity.ts; it is repeated here for values that arrive another way.
import { badInput } from '../errors.ts';

// Deliberately plain: one @, no spaces or control characters, a dot in the domain.
const EMAIL = /^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+\.[^\s@\p{Cc}]+$/u;
// Unicode's White_Space, not JavaScript's trim(), which also drops U+FEFF (a format character, refused instead).
const OUTER_WHITE_SPACE = /^\p{White_Space}+|\p{White_Space}+$/gu;
// Characters that render as nothing or steer rendering: two addresses that look the same must be one string.
const INVISIBLE_IN_EMAIL = /[\p{Default_Ignorable_Code_Point}\p{Cf}\p{Cc}]/u;
// Bidi controls reorder what surrounds them (a name that reads differently from what it is). Joiners and variation
// selectors stay: emoji sequences and Indic scripts need them.
const BIDI_CONTROL = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;
const VISIBLE = /[^\p{White_Space}\p{Default_Ignorable_Code_Point}]/u;

const wellFormed = (text: string) => text.isWellFormed() && !text.includes('\0');
const trimWhiteSpace = (text: string) => text.replace(OUTER_WHITE_SPACE, '');

/**
 * The one spelling of an email address: trimmed of White_Space, NFC, lower-cased. Refuses invisible and format
 * characters anywhere, and compatibility look-alikes (anything NFKC would change, such as fullwidth letters).
 */
export function normalizeEmail(input: string, field = 'email'): string {
  const invalid = () => badInput(field, 'Enter a valid email address');
  if (!wellFormed(input)) throw invalid();
  const email = trimWhiteSpace(input).normalize('NFC').toLowerCase().normalize('NFC');
  if (INVISIBLE_IN_EMAIL.test(email) || email.normalize('NFKC') !== email) throw invalid();
  if (email.length > 254 || !EMAIL.test(email)) throw invalid();
  return email;
}

/** Checks a password as given: never trimmed, normalised or case-folded, so the bytes hashed are the bytes sent. */
export function validatePassword(password: string, field = 'password'): string {
  // A lone surrogate would be hashed as U+FFFD, and so would every other one: refuse rather than conflate them.
  if (!password.isWellFormed()) throw badInput(field, 'The password is not well-formed text');
  const bytes = Buffer.byteLength(password, 'utf8');
  if (bytes < 8) throw badInput(field, 'The password must be at least 8 bytes long');
  // bcrypt reads at most 72 bytes and stops at NUL: refuse instead of silently truncating.
  if (bytes > 72) throw badInput(field, 'The password must be at most 72 bytes long (UTF-8)');
  if (password.includes('\0')) throw badInput(field, 'The password must not contain NUL characters');
  return password;
}

/**
 * NFC, then at most 100 code points. Empty or only whitespace clears the name (null); refused: control
 * characters, bidi controls, and a value with nothing visible in it.
 */
export function normalizeDisplayName(input: string | null | undefined, field = 'displayName'): string | null {
  if (input === null || input === undefined) return null;
  if (!wellFormed(input)) throw badInput(field, 'The display name is not well-formed text');
  const name = trimWhiteSpace(input.normalize('NFC'));
  if (name === '') return null;
  if ([...name].length > 100) throw badInput(field, 'The display name must be at most 100 characters');
  if (/\p{Cc}/u.test(name)) throw badInput(field, 'The display name must not contain control characters');
  if (BIDI_CONTROL.test(name)) throw badInput(field, 'The display name must not contain bidirectional controls');
  if (!VISIBLE.test(name)) throw badInput(field, 'The display name must contain a visible character');
  return name;
}
