// The admin console's sessions and the authority behind them. A session row is written only
// once a person has signed in (their code redeemed), is found by the keyed hash of its id, ends
// when idle, and carries no authority of its own: every request reads the person's roles as they
// are now, as the admin API does for a token (oidc/token-policy.ts authorizeAccessToken).
import { randomBytes } from 'node:crypto';
import type { Db } from '../db/tables.ts';
import type { ArtifactKey } from '../domain/artifact-hashing.ts';
import { ADMIN_READ_SCOPE, ADMIN_WRITE_SCOPE, CONSOLE_CLIENT_ID, POSTERN_API } from '../domain/postern-api.ts';
import { writeAndPropagate } from '../propagation/index.ts';
import { findClientById, updateClient } from '../store/clients.ts';
import * as sessions from '../store/console-sessions.ts';
import { findUserById, listUserGrants } from '../store/users.ts';

export { CONSOLE_CLIENT_ID };
const SESSION_MODEL = 'ConsoleSession';

export interface ConsoleSessionSettings {
  /** A session unused this long ends. */
  idleSeconds: number;
  /** A session ends this long after sign-in, used or not. */
  maxSeconds: number;
}

export const DEFAULT_CONSOLE_SESSION: ConsoleSessionSettings = { idleSeconds: 15 * 60, maxSeconds: 8 * 3600 };

/** What a person may do in the console now. */
export interface ConsoleAuthority {
  userId: string;
  username: string;
  name: string | null;
  canRead: boolean;
  canWrite: boolean;
}

/** The person's console authority from their current roles; undefined when disabled or deleted. */
export async function consoleAuthorityOf(db: Db, userId: string): Promise<ConsoleAuthority | undefined> {
  const [user, grants] = await Promise.all([findUserById(db, userId), listUserGrants(db, userId)]);
  if (!user?.enabled) return undefined;
  const scopes = new Set(grants.filter((grant) => grant.identifier === POSTERN_API).map((grant) => grant.scope));
  return {
    userId: user.id,
    username: user.username,
    name: user.name,
    canRead: scopes.has(ADMIN_READ_SCOPE),
    canWrite: scopes.has(ADMIN_WRITE_SCOPE) && scopes.has(ADMIN_READ_SCOPE),
  };
}

export interface ConsoleSession {
  userId: string;
  /** The secret of this session's CSRF tokens. */
  csrfSecret: string;
}

/** Starts a session for a person who has just signed in; the id goes to the browser only. */
export async function startConsoleSession(
  db: Db, key: ArtifactKey, userId: string, csrfSecret: string,
  settings: ConsoleSessionSettings = DEFAULT_CONSOLE_SESSION, now = new Date(),
): Promise<{ sessionId: string }> {
  const sessionId = randomBytes(32).toString('base64url');
  await sessions.insertConsoleSession(db, {
    idHash: key.storedId(SESSION_MODEL, sessionId), userId, csrfSecret, now,
    expiresAt: new Date(now.getTime() + settings.maxSeconds * 1000),
  });
  return { sessionId };
}

/** Only values of the shape startConsoleSession makes are looked up. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

/** The live session with this id, kept alive by this use; undefined when unknown, expired or idle. */
export async function resumeConsoleSession(
  db: Db, key: ArtifactKey, sessionId: string | undefined,
  settings: ConsoleSessionSettings = DEFAULT_CONSOLE_SESSION, now = new Date(),
): Promise<ConsoleSession | undefined> {
  if (!sessionId || !SESSION_ID.test(sessionId)) return undefined;
  const idHash = key.storedId(SESSION_MODEL, sessionId);
  const row = await sessions.findLiveConsoleSession(db, idHash, now, new Date(now.getTime() - settings.idleSeconds * 1000));
  if (!row) return undefined;
  // One write a minute at most per session, not one per page.
  if (now.getTime() - row.last_seen_at.getTime() > 60_000) await sessions.touchConsoleSession(db, idHash, now);
  return { userId: row.user_id, csrfSecret: row.csrf_secret };
}

export async function endConsoleSession(db: Db, key: ArtifactKey, sessionId: string | undefined): Promise<void> {
  if (!sessionId || !SESSION_ID.test(sessionId)) return;
  await sessions.deleteConsoleSession(db, key.storedId(SESSION_MODEL, sessionId));
}

export async function pruneConsoleSessions(db: Db, settings: ConsoleSessionSettings = DEFAULT_CONSOLE_SESSION, now = new Date()): Promise<number> {
  return sessions.deleteStaleConsoleSessions(db, now, new Date(now.getTime() - settings.idleSeconds * 1000));
}

/**
 * Points the console's app at where this server serves the console: the redirect URI of its
 * codes and where people land after signing out. Written only when it differs, so that every
 * process of a deployment can call it at start.
 */
export async function registerConsoleApp(db: Db, urls: { redirectUri: string; postLogoutRedirectUri: string }): Promise<boolean> {
  const row = await findClientById(db, CONSOLE_CLIENT_ID);
  if (!row) return false;
  const metadata = row.metadata as Record<string, unknown>;
  const same = (a: unknown, b: string) => Array.isArray(a) && a.length === 1 && a[0] === b;
  if (same(metadata.redirect_uris, urls.redirectUri) && same(metadata.post_logout_redirect_uris, urls.postLogoutRedirectUri)) return true;
  await writeAndPropagate(db, { kind: 'client', clientId: CONSOLE_CLIENT_ID }, async (trx) => {
    await updateClient(trx, CONSOLE_CLIENT_ID, {
      metadata: { ...metadata, redirect_uris: [urls.redirectUri], post_logout_redirect_uris: [urls.postLogoutRedirectUri] },
    });
  });
  return true;
}
