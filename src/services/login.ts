// A person's attempt to sign in at the login page: the brute-force gate (login-protection.ts), the
// password check, and the record of what happened in the audit log and the metrics. The page
// (http/interactions.ts) only shows the outcome; never the password, anywhere.
import type { AuditSink } from '../domain/audit-events.ts';
import type { Db } from '../db/tables.ts';
import type { Metrics } from '../platform/metrics.ts';
import type { LoginProtection } from './login-protection.ts';
import { authenticateUser } from './users.ts';

export interface LoginDeps {
  db: Db;
  protection: LoginProtection;
  /** login.success, login.failure and login.lockout go here. */
  audit: AuditSink;
  /** Logins by outcome, and lockouts. */
  metrics: Pick<Metrics, 'logins' | 'lockouts'>;
}

export interface LoginAttempt {
  username: string;
  password: string;
  /** The address the request comes from (as the HTTP layer trusts it). */
  sourceAddress: string;
  /** The app the person is signing in to, and the request: for the audit log. */
  clientId: string;
  requestId: string;
}

export type LoginOutcome =
  | { kind: 'signed_in'; user: { id: string; username: string } }
  /** Wrong username or password; `locked`: this failure locked the username or the address. */
  | { kind: 'refused'; locked: boolean }
  /** Not checked: locked out, or waiting out the delay after the last failures. */
  | { kind: 'throttled'; retryAfterSeconds: number };

type LoginEvent = { type: 'login.success' | 'login.failure' | 'login.lockout'; username: string; userId?: string; reason?: string };

/** A login event: who (when known), from where, for which app; never the password. */
function recordLogin(deps: LoginDeps, attempt: LoginAttempt, event: LoginEvent): void {
  deps.metrics.logins.inc({ outcome: event.type.slice('login.'.length) });
  if (event.type === 'login.lockout') deps.metrics.lockouts.inc();
  deps.audit.record({
    type: event.type,
    actor: event.userId ? { type: 'user', id: event.userId } : { type: 'anonymous' },
    outcome: event.type === 'login.success' ? 'success' : 'failure',
    clientId: attempt.clientId,
    userId: event.userId ?? null,
    sourceAddress: attempt.sourceAddress,
    requestId: attempt.requestId,
    details: { username: event.username.slice(0, 100), ...(event.reason ? { reason: event.reason } : {}) },
  });
}

export async function attemptLogin(deps: LoginDeps, attempt: LoginAttempt): Promise<LoginOutcome> {
  const { username, sourceAddress } = attempt;
  const gate = await deps.protection.check(username, sourceAddress);
  if (!gate.allowed) {
    // Attempts while locked are failures anyone can repeat at will (counted, docs/audit.md);
    // login.lockout is the attempt that locked.
    if (gate.locked) recordLogin(deps, attempt, { type: 'login.failure', username, reason: 'locked' });
    return { kind: 'throttled', retryAfterSeconds: gate.retryAfterSeconds };
  }
  const user = await authenticateUser(deps.db, username, attempt.password);
  if (!user) {
    const { locked } = await deps.protection.recordFailure(username, sourceAddress);
    recordLogin(deps, attempt, { type: locked ? 'login.lockout' : 'login.failure', username });
    return { kind: 'refused', locked };
  }
  await deps.protection.recordSuccess(username);
  recordLogin(deps, attempt, { type: 'login.success', username: user.username, userId: user.id });
  return { kind: 'signed_in', user: { id: user.id, username: user.username } };
}
