// The password policy (docs/users.md): long enough, not absurdly long, not one of the tens of
// thousands of most common passwords (the list ships with @zxcvbn-ts/language-common), and not
// the username or email. Length over composition rules, as NIST SP 800-63B §5.1.1.2 advises.
import { createRequire } from 'node:module';
import { invalid } from './errors.ts';

export const MIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 256;

let common: Set<string> | undefined;

function commonPasswords(): Set<string> {
  if (!common) {
    const require = createRequire(import.meta.url);
    const { dictionary } = require('@zxcvbn-ts/language-common') as { dictionary: Record<string, string[]> };
    common = new Set(dictionary['passwords-common']!.map((word) => word.toLowerCase()));
  }
  return common;
}

/**
 * The forms of a password to look up: itself, without the digits and symbols people tack on at
 * either end ("password2024!"), and the unit of a repetition ("monkeymonkey").
 */
function lookupForms(lower: string): string[] {
  const forms = [lower, lower.replace(/^[^\p{L}]+|[^\p{L}]+$/gu, '')];
  const repeated = /^(.+?)\1+$/u.exec(lower);
  if (repeated) forms.push(repeated[1]!);
  return forms.filter((form) => form.length >= 4);
}

/** Throws invalid_input naming the rule a password breaks. */
export function checkPassword(password: string, person: { username: string; email?: string | null }): void {
  const length = [...password].length;
  if (length < MIN_PASSWORD_LENGTH) {
    throw invalid(`the password must be at least ${MIN_PASSWORD_LENGTH} characters long`, 'password');
  }
  if (length > MAX_PASSWORD_LENGTH) {
    throw invalid(`the password must be at most ${MAX_PASSWORD_LENGTH} characters long`, 'password');
  }
  const lower = password.toLowerCase();
  if (lookupForms(lower).some((form) => commonPasswords().has(form))) {
    throw invalid('this password is in a list of commonly used passwords: choose another', 'password');
  }
  const names = [person.username, person.email ?? '', person.email?.split('@')[0] ?? '']
    .map((name) => name.toLowerCase()).filter((name) => name.length >= 3);
  if (names.some((name) => lower.includes(name))) {
    throw invalid('the password must not contain the username or email address', 'password');
  }
}
