// Input rules of API.md: normalised emails, 8-72 byte passwords, display names of at most 100 code points.
import { badInput } from '../errors.ts';

// Deliberately plain: one @, no spaces or control characters, a dot in the domain.
const EMAIL = /^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+\.[^\s@\p{Cc}]+$/u;

export function normalizeEmail(input: string, field = 'email'): string {
  const email = input.trim().toLowerCase();
  if (email.length > 254 || !EMAIL.test(email)) throw badInput(field, 'Enter a valid email address');
  return email;
}

export function validatePassword(password: string, field = 'password'): string {
  const bytes = Buffer.byteLength(password, 'utf8');
  if (bytes < 8) throw badInput(field, 'The password must be at least 8 bytes long');
  // bcrypt reads at most 72 bytes and stops at NUL: refuse instead of silently truncating.
  if (bytes > 72) throw badInput(field, 'The password must be at most 72 bytes long (UTF-8)');
  if (password.includes('\0')) throw badInput(field, 'The password must not contain NUL characters');
  return password;
}

export function normalizeDisplayName(input: string | null | undefined, field = 'displayName'): string | null {
  if (input === null || input === undefined) return null;
  const name = input.trim();
  if (name === '') return null;
  if ([...name].length > 100) throw badInput(field, 'The display name must be at most 100 characters');
  if (/\p{Cc}/u.test(name)) throw badInput(field, 'The display name must not contain control characters');
  return name;
}
