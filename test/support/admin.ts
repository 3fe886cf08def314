// Helpers for the admin API tests: admin clients and tokens, and JSON requests over real HTTP.
import type { Kysely } from 'kysely';
import type { Tables } from '../../src/db/tables.ts';
import { ADMIN_SCOPES, POSTERN_API } from '../../src/services/admin.ts';
import { createRole } from '../../src/services/roles.ts';
import { serviceClient, unique } from './fixtures.ts';
import { postForm } from './server.ts';
import { NO_AUDIT } from '../../src/domain/audit-events.ts';

export interface Credentials { id: string; secret: string; name: string }

/** A client whose role grants `scopes` of urn:postern (both admin scopes by default). */
export async function adminClient(db: Kysely<Tables>, scopes: string[] = ADMIN_SCOPES): Promise<Credentials> {
  const role = await createRole(db, { name: unique('admin-role'), grants: [{ api: POSTERN_API, scopes }] }, NO_AUDIT);
  return serviceClient(db, [role.name]);
}

/** A client-credentials access token for `resource` (urn:postern by default). */
export async function tokenFor(issuer: string, client: { id: string; secret: string }, resource = POSTERN_API): Promise<string> {
  const res = await postForm(`${issuer}/token`, { grant_type: 'client_credentials', resource }, client);
  if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.access_token as string;
}

export interface Reply { status: number; headers: Headers; body: any; text: string }

/**
 * A request to the admin API at `base` (a server's origin). `body` is sent as JSON unless it is
 * a string, which is sent as it is (with the given content type).
 */
export async function adminCall(
  base: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(`${base}/admin/v1${path}`, { method, headers, body });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {}
  return { status: response.status, headers: response.headers, body: parsed, text };
}

/** Binds adminCall to a server and a token. */
export function adminClientFor(base: string, token: string) {
  return (method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
    adminCall(base, method, path, { token, body, headers });
}
