// Clients in the console: list and search, create (the secret shown once), settings, a sign-in
// app's redirect URIs, a workload's binding to a trusted issuer, secret rotation with overlap,
// disable and enable, token revocation, roles, delete by name.
import type Koa from 'koa';
import { FEDERATED_AUTH_METHOD } from '../../domain/trusted-issuers.ts';
import * as clients from '../../services/clients.ts';
import { CONSOLE_CLIENT_ID } from '../../services/console-sessions.ts';
import { invalid } from '../../services/errors.ts';
import { assignRoleToClient, listRoleSummaries, unassignRoleFromClient } from '../../services/roles.ts';
import { revokeClientTokens } from '../../services/tokens.ts';
import { listIssuers } from '../../services/trusted-issuers.ts';
import {
  auditOf, ConsolePageError, field, lines, listPaging, noticeOf, PAGE_SIZE, queryText, readChange, redirectTo, refusalStatus, render, serviceMessage,
  signedIn,
  type ConsoleDeps, type ConsolePages,
} from './kit.ts';

const OVERLAPS = [
  { seconds: 0, label: 'none: old secrets stop now' },
  { seconds: 3600, label: '1 hour' },
  { seconds: 86400, label: '1 day' },
  { seconds: 7 * 86400, label: '7 days' },
];

const KINDS = ['service', 'web', 'public', 'workload'] as const;

/** URIs typed one a line (or separated by spaces: a URI holds none, but may hold a comma). */
const uriLines = (value: string) => value.split(/\s+/).filter(Boolean);

/** Claims a workload's token must carry, typed one a line as name=value. */
function claimLines(text: string): Record<string, string> {
  const claims: Record<string, string> = {};
  for (const line of text.split(/\r?\n/).map((each) => each.trim()).filter(Boolean)) {
    const at = line.indexOf('=');
    if (at < 1) throw invalid(`a required claim is name=value, one a line (not "${line.slice(0, 100)}")`, 'federatedClaims');
    claims[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return claims;
}

/** The binding of a workload's form: a trusted issuer, the subject of its tokens, required claims. */
const federationInput = (form: URLSearchParams): clients.FederationInput => ({
  issuer: field(form, 'federatedIssuer'), subject: field(form, 'federatedSubject'), claims: claimLines(field(form, 'federatedClaims')),
});

/** A form sent back with what was typed in it (never its CSRF token). */
const typed = (form: URLSearchParams) => Object.fromEntries([...form].filter(([key]) => key !== 'csrf'));

function requireWriter(ctx: Koa.Context): void {
  if (!signedIn(ctx).who.canWrite) throw new ConsolePageError(403, 'Creating clients takes the admin:write scope on urn:postern.');
}

async function listPage(deps: ConsoleDeps, ctx: Koa.Context): Promise<void> {
  const q = queryText(ctx, 'q');
  const status = queryText(ctx, 'status');
  const paging = listPaging(ctx, '/clients', { q, status });
  const page = await clients.listClientsPage(deps.db, {
    limit: PAGE_SIZE, cursor: paging.cursor, namePrefix: q, enabled: status === 'enabled' ? true : status === 'disabled' ? false : undefined,
  });
  render(ctx, 'clients', { title: 'Clients', section: 'clients', items: page.items, q, status, paging: paging.links(page.nextCursor), notice: noticeOf(ctx) });
}

async function newForm(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  requireWriter(ctx);
  const [roles, issuers] = await Promise.all([listRoleSummaries(deps.db), listIssuers(deps.db)]);
  render(ctx, 'client-new', { title: 'New client', section: 'clients', roles, issuers, form: {}, ...extra }, { status });
}

function createInput(form: URLSearchParams): clients.CreateClientInput {
  const kind = field(form, 'kind') as (typeof KINDS)[number];
  if (!KINDS.includes(kind)) throw new ConsolePageError(400, 'Choose what kind of client this is.');
  const signIn = kind === 'web' || kind === 'public';
  return {
    name: field(form, 'name'),
    roles: form.getAll('roles'),
    ...(signIn ? {
      grantTypes: ['authorization_code', ...(form.get('refresh') ? ['refresh_token'] : [])],
      redirectUris: uriLines(field(form, 'redirectUris')),
      postLogoutRedirectUris: uriLines(field(form, 'postLogoutRedirectUris')),
      public: kind === 'public',
      firstParty: form.get('firstParty') === 'on',
    } : {}),
    ...(kind === 'workload' ? { federated: federationInput(form) } : {}),
    allowedNetworks: lines(field(form, 'allowedNetworks')),
    requireDpop: form.get('requireDpop') === 'on',
  };
}

/** POST /clients/new: the secret is in this response only (no-store), never stored or redirected. */
async function create(deps: ConsoleDeps, ctx: Koa.Context): Promise<void> {
  const form = await readChange(deps, ctx);
  let created: clients.CreatedClient;
  try {
    created = await clients.createClient(deps.db, createInput(form), auditOf(deps, ctx));
  } catch (error) {
    await newForm(deps, ctx, { error: serviceMessage(error), form: typed(form) }, 400);
    return;
  }
  if (!created.clientSecret) {
    redirectTo(ctx, `/clients/${encodeURIComponent(created.client.clientId)}`, `Client ${created.client.name} created.`);
    return;
  }
  showSecret(deps, ctx, created.client, created.clientSecret, 'created');
}

function showSecret(deps: ConsoleDeps, ctx: Koa.Context, client: clients.ClientView, secret: string, what: 'created' | 'rotated'): void {
  render(ctx, 'client-secret', {
    title: `Secret of ${client.name}`, section: 'clients', client, secret, what, tokenUrl: `${deps.issuer}/token`,
  });
}

async function detail(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  const client = await clients.getClient(deps.db, ctx.params.id!);
  const federated = client.tokenEndpointAuthMethod === FEDERATED_AUTH_METHOD;
  const [roles, issuers] = await Promise.all([listRoleSummaries(deps.db), federated ? listIssuers(deps.db) : []]);
  const otherRoles = roles.map((role) => role.name).filter((name) => !client.roles.includes(name));
  render(ctx, 'client', {
    title: client.name, section: 'clients', client, overlaps: OVERLAPS, otherRoles, issuers, form: {}, notice: noticeOf(ctx),
    // The console's own app: its redirect URIs are written by each server at start.
    ownApp: client.clientId === CONSOLE_CLIENT_ID, ...extra,
  }, { status });
}

/** Runs a change; a service's refusal is shown on the client's page, with what was typed. */
function change(deps: ConsoleDeps, work: (ctx: Koa.Context, form: URLSearchParams, id: string) => Promise<string | void>): Koa.Middleware {
  return async (ctx) => {
    const form = await readChange(deps, ctx);
    const id = ctx.params.id!;
    let notice: string | void;
    try {
      notice = await work(ctx, form, id);
    } catch (error) {
      await detail(deps, ctx, { error: serviceMessage(error), form: typed(form) }, refusalStatus(error));
      return;
    }
    if (ctx.status === 200 && ctx.body) return; // the work rendered its own answer
    if (notice !== undefined) redirectTo(ctx, `/clients/${encodeURIComponent(id)}`, notice);
  };
}

export function registerClientPages(pages: ConsolePages, deps: ConsoleDeps): void {
  pages.get('/clients', (ctx) => listPage(deps, ctx));
  pages.get('/clients/new', (ctx) => newForm(deps, ctx));
  pages.post('/clients/new', (ctx) => create(deps, ctx));
  pages.get('/clients/:id', (ctx) => detail(deps, ctx));
  pages.post('/clients/:id/rotate', change(deps, async (ctx, form, id) => {
    const client = await clients.getClient(deps.db, id);
    // A form shown before another rotation (or sent twice, a reload) rotates nothing.
    const newest = client.secrets.at(-1)?.id ?? '';
    if (field(form, 'current') !== newest) return 'That form was out of date: the secret was not rotated again. Rotate again if you need to.';
    const seconds = Number(field(form, 'overlap'));
    if (!OVERLAPS.some((overlap) => overlap.seconds === seconds)) throw new ConsolePageError(400, 'Choose how long the old secret keeps working.');
    const rotated = await clients.rotateClientSecret(deps.db, id, seconds, auditOf(deps, ctx));
    showSecret(deps, ctx, rotated.client, rotated.clientSecret, 'rotated');
  }));
  pages.post('/clients/:id/enable', change(deps, async (ctx, _form, id) => {
    const client = await clients.setClientEnabled(deps.db, id, true, auditOf(deps, ctx));
    return `${client.name} is enabled.`;
  }));
  pages.post('/clients/:id/disable', change(deps, async (ctx, _form, id) => {
    const client = await clients.setClientEnabled(deps.db, id, false, auditOf(deps, ctx));
    return `${client.name} is disabled; its tokens were revoked.`;
  }));
  pages.post('/clients/:id/revoke-tokens', change(deps, async (ctx, _form, id) => {
    const result = await revokeClientTokens(deps.db, id, auditOf(deps, ctx));
    return `Every token issued before ${result.revokedBefore} is revoked.`;
  }));
  pages.post('/clients/:id/settings', change(deps, async (ctx, form, id) => {
    const current = await clients.getClient(deps.db, id);
    const input: clients.UpdateClientInput = {
      allowedNetworks: lines(field(form, 'allowedNetworks')),
      requireDpop: form.get('requireDpop') === 'on',
      requireMtls: form.get('requireMtls') === 'on',
    };
    if (current.tokenEndpointAuthMethod === 'self_signed_tls_client_auth' && field(form, 'certificates')) {
      input.certificates = field(form, 'certificates').split(/(?=-----BEGIN CERTIFICATE-----)/).map((pem) => pem.trim()).filter(Boolean);
    }
    if (current.tokenEndpointAuthMethod === 'tls_client_auth' && field(form, 'subjectValue')) {
      input.tlsSubject = { field: field(form, 'subjectField') || 'subject_dn', value: field(form, 'subjectValue') } as clients.TlsSubject;
    }
    await clients.updateClient(deps.db, id, input, auditOf(deps, ctx));
    return 'Settings saved.';
  }));
  pages.post('/clients/:id/redirect-uris', change(deps, async (ctx, form, id) => {
    await clients.updateClient(deps.db, id, {
      redirectUris: uriLines(field(form, 'redirectUris')), postLogoutRedirectUris: uriLines(field(form, 'postLogoutRedirectUris')),
    }, auditOf(deps, ctx));
    return 'Redirect URIs saved.';
  }));
  pages.post('/clients/:id/federation', change(deps, async (ctx, form, id) => {
    await clients.updateClient(deps.db, id, { federated: federationInput(form) }, auditOf(deps, ctx));
    return 'Binding saved.';
  }));
  pages.post('/clients/:id/roles', change(deps, async (ctx, form, id) => {
    const role = field(form, 'role');
    if (!role) throw new ConsolePageError(400, 'Choose a role.');
    if (form.get('action') === 'unassign') await unassignRoleFromClient(deps.db, role, id, auditOf(deps, ctx));
    else await assignRoleToClient(deps.db, role, id, auditOf(deps, ctx));
    return form.get('action') === 'unassign' ? `Role ${role} taken away.` : `Role ${role} assigned.`;
  }));
  pages.post('/clients/:id/delete', change(deps, async (ctx, form, id) => {
    const client = await clients.getClient(deps.db, id);
    if (field(form, 'confirm') !== client.name) {
      throw new ConsolePageError(400, `To delete this client, type its name (${client.name}) exactly.`);
    }
    await clients.deleteClient(deps.db, id, auditOf(deps, ctx));
    redirectTo(ctx, '/clients', `Client ${client.name} deleted.`);
  }));
}
