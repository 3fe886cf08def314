// Brute-force protection of the login page (docs/users.md). Failures are counted per username and
// per source address in the database, so every process sees the same counts. After a few
// failures of one username each further attempt at it must wait a growing delay, and at its
// threshold the username is locked out for a while. An address is only locked out, at a far
// higher threshold: it may be a whole office behind one NAT, where two typos of one person must
// not hold up everyone else. Unknown usernames are counted exactly like real ones, so the answers
// never tell whether an account exists.
import { createHash } from 'node:crypto';
import type { Db } from '../db/tables.ts';
import { addressBucket } from '../domain/networks.ts';
import {
  deleteLoginFailures, deleteStaleLoginFailures, findLoginFailures, recordLoginFailure, type LoginFailureRow,
} from '../store/login-failures.ts';

/** The settings (LOGIN_* in config.ts). */
export interface LoginProtectionSettings {
  /** Failed logins for one username within `windowSeconds` before it is locked. */
  maxFailures: number;
  /** Failed logins from one source address within `windowSeconds` before it is locked. */
  addressMaxFailures: number;
  /** How long a lockout lasts. */
  lockoutSeconds: number;
  /** Failures older than this are forgotten. */
  windowSeconds: number;
  /** Failures after which each further attempt must wait (1 s, 2 s, 4 s, ...) before it is checked. */
  slowDownAfter: number;
}

export type LoginGate = { allowed: true } | { allowed: false; retryAfterSeconds: number; locked: boolean };

const MAX_DELAY_SECONDS = 60;

// The counters are keyed by digests: the table never holds a username someone typed.
// Stryker disable next-line StringLiteral: an empty encoding is Node's default, utf8, for a string.
const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest('base64url');
const usernameKey = (username: string) => `user:${digest(username.trim().toLowerCase())}`;
// Counted by bucket (an IPv6 /64, an IPv4 address however the socket spells it), so one host
// cannot spread its failures over the 2^64 addresses of its network (src/domain/networks.ts).
const addressKey = (address: string) => `addr:${digest(addressBucket(address))}`;

export class LoginProtection {
  #db: Db;
  #settings: LoginProtectionSettings;
  #now: () => number;

  /** `now`: the clock of every count and check (tests may move it). */
  constructor(db: Db, settings: LoginProtectionSettings, now: () => number = Date.now) {
    this.#db = db;
    this.#settings = settings;
    this.#now = now;
  }

  /** A username's counter: locked, or waiting out the delay after its last failure. */
  #gateUsername(row: LoginFailureRow, now: number): LoginGate {
    const locked = this.#lockout(row, now);
    if (!locked.allowed) return locked;
    const over = row.failures - this.#settings.slowDownAfter;
    if (over >= 0 && row.first_at.getTime() > now - this.#settings.windowSeconds * 1000) {
      const delay = Math.min(2 ** over, MAX_DELAY_SECONDS) * 1000;
      const wait = row.last_at.getTime() + delay - now;
      if (wait > 0) return { allowed: false, locked: false, retryAfterSeconds: Math.ceil(wait / 1000) };
    }
    return { allowed: true };
  }

  /** Whether a counter is locked out; an address's is never slowed down (see the top of this file). */
  #lockout(row: LoginFailureRow, now: number): LoginGate {
    if (row.locked_until && row.locked_until.getTime() > now) {
      return { allowed: false, locked: true, retryAfterSeconds: Math.ceil((row.locked_until.getTime() - now) / 1000) };
    }
    return { allowed: true };
  }

  /** Whether an attempt for this username from this address may be checked now. */
  async check(username: string, address: string): Promise<LoginGate> {
    const now = this.#now();
    const [userKey, addrKey] = [usernameKey(username), addressKey(address)];
    const rows = await findLoginFailures(this.#db, [userKey, addrKey]);
    let worst: LoginGate = { allowed: true };
    for (const row of rows) {
      const gate = row.key === userKey ? this.#gateUsername(row, now) : this.#lockout(row, now);
      // Of two equal waits either may be reported; which comes first is the database's row order.
      // Stryker disable next-line EqualityOperator: see the line above.
      if (!gate.allowed && (worst.allowed || gate.retryAfterSeconds > worst.retryAfterSeconds)) worst = gate;
    }
    return worst;
  }

  /** Counts a failed attempt; says whether it locked the username or the address. */
  async recordFailure(username: string, address: string): Promise<{ locked: boolean }> {
    const { windowSeconds, lockoutSeconds } = this.#settings;
    const now = this.#now();
    const at = new Date(now);
    const [user, addr] = await Promise.all([
      recordLoginFailure(this.#db, usernameKey(username), { threshold: this.#settings.maxFailures, windowSeconds, lockoutSeconds }, at),
      recordLoginFailure(this.#db, addressKey(address), { threshold: this.#settings.addressMaxFailures, windowSeconds, lockoutSeconds }, at),
    ]);
    return { locked: [user, addr].some((row) => row.locked_until !== null && row.locked_until.getTime() > now) };
  }

  /**
   * A successful login clears the username's count. The address's count is left to expire: one
   * account of an attacker's own must not reset the count of a password-spraying address.
   */
  async recordSuccess(username: string): Promise<void> {
    await deleteLoginFailures(this.#db, usernameKey(username));
  }

  async prune(): Promise<number> {
    return deleteStaleLoginFailures(this.#db, Math.max(this.#settings.windowSeconds, this.#settings.lockoutSeconds), new Date(this.#now()));
  }
}
