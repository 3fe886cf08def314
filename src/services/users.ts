// Use-cases for people who sign in through the browser: accounts, passwords, sessions.
import { grantDigest, randomId } from '../domain/crypto.ts';
import type { Db } from '../db/tables.ts';
import { deletePayloadsOfAccount, listGrantsOfAccount } from '../store/oidc-payloads.ts';
import { deleteConsoleSessionsOfUser } from '../store/console-sessions.ts';
import { insertRevokedGrant } from '../store/revocations.ts';
import { findRole } from '../store/roles.ts';
import * as users from '../store/users.ts';
import { conflict, invalid, isUniqueViolation, notFound } from './errors.ts';
import type { AuditSink } from '../domain/audit-events.ts';
import { checkPassword } from './password-policy.ts';
import { writeAndPropagate, type Change } from '../propagation/index.ts';
import { decodeCursor, encodeCursor, pageLimit, type Page } from './paging.ts';
import { changedFields, checkName } from './validation.ts';

/** Passwords need argon2, a native module: loaded by what hashes or checks one, not by what lists people. */
const passwords = () => import('../domain/passwords.ts');

export interface UserView {
  id: string;
  username: string;
  email: string | null;
  emailVerified: boolean;
  name: string | null;
  enabled: boolean;
  roles: string[];
  passwordChangedAt: string;
  createdAt: string;
}

async function toView(db: Db, row: users.UserRow): Promise<UserView> {
  return {
    id: row.id,
    username: row.username,
    email: row.email,
    emailVerified: row.email_verified,
    name: row.name,
    enabled: row.enabled,
    roles: await users.listRoleNamesOfUser(db, row.id),
    passwordChangedAt: row.password_changed_at.toISOString(),
    createdAt: row.created_at.toISOString(),
  };
}

export async function requireUser(db: Db, ref: string): Promise<users.UserRow> {
  const user = (await users.findUserById(db, ref)) ?? (await users.findUserByUsername(db, ref));
  if (!user) throw notFound(`unknown user "${ref}"`);
  return user;
}

// RFC 5321 allows far more, but an address people type at a login page looks like this.
const EMAIL = /^[^\s@<>()",;:]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$/;

function checkEmail(email: string | null | undefined): string | null | undefined {
  if (email === undefined || email === null) return email;
  if (!EMAIL.test(email)) throw invalid(`"${email}" is not an email address`, 'email');
  return email;
}

function checkDisplayName(name: string | null | undefined): string | null | undefined {
  if (name === undefined || name === null) return name;
  if (name.length > 200 || /[\u0000-\u001f\u007f]/.test(name)) throw invalid('name must be at most 200 printable characters', 'name');
  return name;
}

function uniqueViolation(error: unknown, username: string): never {
  if (isUniqueViolation(error)) {
    const detail = String((error as { constraint?: string; message?: string }).constraint ?? (error as Error).message);
    throw conflict(detail.includes('email') ? 'another user has this email address' : `a user named "${username}" already exists`);
  }
  throw error;
}

export interface CreateUserInput {
  username: string;
  password: string;
  email?: string | null;
  name?: string | null;
  roles?: string[];
}

export async function createUser(db: Db, input: CreateUserInput, audit: AuditSink): Promise<UserView> {
  const username = checkName(input.username, 'username');
  const email = checkEmail(input.email) ?? null;
  const name = checkDisplayName(input.name) ?? null;
  checkPassword(input.password, { username, email });
  const { hashPassword } = await passwords();
  const passwordHash = await hashPassword(input.password);
  try {
    const view = await db.transaction().execute(async (trx) => {
      const row = await users.insertUser(trx, { id: randomId('usr_'), username, email, name, passwordHash });
      for (const ref of input.roles ?? []) {
        const role = await findRole(trx, ref);
        if (!role) throw notFound(`unknown role "${ref}"`);
        await users.insertUserRole(trx, row.id, role.id);
      }
      return toView(trx, row);
    });
    audit.record({ type: 'user.created', target: { type: 'user', id: view.id }, details: { username, roles: view.roles } });
    return view;
  } catch (error) {
    return uniqueViolation(error, username);
  }
}

export async function listUsers(db: Db): Promise<UserView[]> {
  const rows = await users.listUsers(db);
  return Promise.all(rows.map((row) => toView(db, row)));
}

/** A page of people in username order (keyset paging: the cursor is the last username). */
/** A page of people in username order, filtered; the cursor is the last username of the page. */
export async function listUsersPage(
  db: Db,
  query: {
    limit?: number; cursor?: string; usernamePrefix?: string;
    /** Only people holding this role (id or name). */
    role?: string;
  } = {},
): Promise<Page<UserView>> {
  const limit = pageLimit(query.limit);
  let roleId: string | undefined;
  if (query.role !== undefined) {
    const role = await findRole(db, query.role);
    if (!role) throw invalid(`unknown role "${query.role}"`, 'role');
    roleId = role.id;
  }
  const afterUsername = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const { rows, more } = await users.listUsersPage(db, { limit, afterUsername, usernamePrefix: query.usernamePrefix, roleId });
  const items = await Promise.all(rows.map((row) => toView(db, row)));
  return { items, nextCursor: more && rows.length ? encodeCursor(rows.at(-1)!.username) : null };
}

export async function getUser(db: Db, ref: string): Promise<UserView> {
  return toView(db, await requireUser(db, ref));
}

export async function updateUser(
  db: Db,
  ref: string,
  input: { email?: string | null; name?: string | null; emailVerified?: boolean },
  audit: AuditSink,
): Promise<UserView> {
  const email = checkEmail(input.email);
  const name = checkDisplayName(input.name);
  const user = await requireUser(db, ref);
  try {
    const row = await users.updateUser(db, user.id, {
      email,
      name,
      // A new address is not verified until said otherwise.
      emailVerified: input.emailVerified ?? (email !== undefined && email !== user.email ? false : undefined),
    });
    audit.record({ type: 'user.updated', target: { type: 'user', id: user.id }, details: { username: user.username, fields: changedFields(input) } });
    return toView(db, row ?? user);
  } catch (error) {
    return uniqueViolation(error, user.username);
  }
}

/**
 * Ends every session of a person and revokes every grant they gave, with the refresh and access
 * tokens issued from them (JWT access tokens through the revocation list). Returns the revocations,
 * for the write to publish: every process caches the list.
 */
async function endSessions(trx: Db, userId: string): Promise<Change[]> {
  const grants = await listGrantsOfAccount(trx, userId);
  const revoked: Change[] = [];
  for (const grant of grants) {
    revoked.push({ kind: 'revoked', ...await insertRevokedGrant(trx, { digest: grantDigest(grant.id), clientId: grant.clientId }) });
  }
  await deletePayloadsOfAccount(trx, userId, grants.map((grant) => grant.id));
  // The admin console's sessions end with the others.
  await deleteConsoleSessionsOfUser(trx, userId);
  return revoked;
}

/** What a write that ended sessions publishes: the revocations it made. */
const revocations = ({ revoked }: { revoked: Change[] }) => revoked;

export async function revokeUserSessions(
  db: Db, ref: string, audit: AuditSink,
): Promise<{ user: UserView; revokedGrants: number }> {
  const { user, revoked } = await writeAndPropagate(db, revocations, async (trx) => {
    const found = await requireUser(trx, ref);
    const ended = await endSessions(trx, found.id);
    return { user: await toView(trx, found), revoked: ended };
  });
  const result = { user, revokedGrants: revoked.length };
  audit.record({
    type: 'user.sessions_revoked', target: { type: 'user', id: result.user.id },
    details: { username: result.user.username, count: result.revokedGrants },
  });
  return result;
}

/** A disabled person cannot sign in, and their sessions and tokens end at once. */
export async function setUserEnabled(db: Db, ref: string, enabled: boolean, audit: AuditSink): Promise<UserView> {
  const { view } = await writeAndPropagate(db, revocations, async (trx) => {
    const user = await requireUser(trx, ref);
    const row = await users.updateUser(trx, user.id, { enabled });
    const revoked = enabled ? [] : await endSessions(trx, user.id);
    return { view: await toView(trx, row ?? user), revoked };
  });
  audit.record({ type: 'user.updated', target: { type: 'user', id: view.id }, details: { username: view.username, enabled } });
  return view;
}

/** Sets a new password (policy-checked); the person's sessions and grants end. */
export async function setUserPassword(db: Db, ref: string, password: string, audit: AuditSink): Promise<UserView> {
  const user = await requireUser(db, ref);
  checkPassword(password, user);
  const { hashPassword } = await passwords();
  const hash = await hashPassword(password);
  const { view } = await writeAndPropagate(db, revocations, async (trx) => {
    await users.setPasswordHash(trx, user.id, hash);
    const revoked = await endSessions(trx, user.id);
    return { view: await toView(trx, (await users.findUserById(trx, user.id)) ?? user), revoked };
  });
  // The field that changed, never its value.
  audit.record({ type: 'user.updated', target: { type: 'user', id: view.id }, details: { username: view.username, fields: ['password'] } });
  return view;
}

export async function deleteUser(db: Db, ref: string, audit: AuditSink): Promise<UserView> {
  const { view: deleted } = await writeAndPropagate(db, revocations, async (trx) => {
    const user = await requireUser(trx, ref);
    const view = await toView(trx, user);
    const revoked = await endSessions(trx, user.id);
    await users.deleteUser(trx, user.id);
    return { view, revoked };
  });
  audit.record({ type: 'user.deleted', target: { type: 'user', id: deleted.id }, details: { username: deleted.username } });
  return deleted;
}

/**
 * Checks a username and password. Unknown and disabled users cost the same time as real ones
 * (a decoy verification), and every failure looks the same to the caller. A hash made with older
 * argon2 parameters is redone now that the password is known.
 */
export async function authenticateUser(db: Db, username: string, password: string): Promise<users.UserRow | undefined> {
  const { hashPassword, passwordNeedsRehash, verifyDecoy, verifyPassword } = await passwords();
  const user = username.length <= 100 ? await users.findUserByUsername(db, username) : undefined;
  if (!user || !user.enabled) {
    await verifyDecoy(password);
    return undefined;
  }
  if (!(await verifyPassword(user.password_hash, password))) return undefined;
  if (passwordNeedsRehash(user.password_hash)) {
    await users.replacePasswordHash(db, user.id, user.password_hash, await hashPassword(password));
  }
  return user;
}

/** The live, enabled person behind an account id (for tokens and userinfo). */
export async function findActiveUser(db: Db, id: string): Promise<{ user: users.UserRow; roles: string[] } | undefined> {
  const user = await users.findUserById(db, id);
  if (!user?.enabled) return undefined;
  return { user, roles: await users.listRoleNamesOfUser(db, id) };
}
