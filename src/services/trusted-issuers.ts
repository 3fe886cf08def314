// Use-cases for trusted issuers (workload identity, docs/workload-identity.md): the platforms
// whose tokens authenticate clients (a Kubernetes cluster, a SPIFFE trust domain, GitHub Actions
// or another OIDC issuer), where their keys come from, and the binding of a client to one of
// their subjects. Every process caches them (services/trusted-jwt.ts): a write returns once all
// have dropped what it changed.
import type { AuditSink } from '../domain/audit-events.ts';
import { randomId } from '../domain/crypto.ts';
import { isLoopbackHost } from '../domain/networks.ts';
import { ISSUER_KINDS, spiffeTrustDomain, type IssuerKind } from '../domain/trusted-issuers.ts';
import type { Db } from '../db/tables.ts';
import { writeAndPropagate, type Change } from '../propagation/index.ts';
import * as store from '../store/trusted-issuers.ts';
import { checkClientJwks } from './client-auth.ts';
import { conflict, invalid, isUniqueViolation, notFound } from './errors.ts';
import { changedFields, checkName } from './validation.ts';

const ISSUER_CHANGED: Change = { kind: 'issuer' };
const MAX_CLAIMS = 20;

export interface IssuerView {
  id: string;
  name: string;
  issuer: string;
  kind: IssuerKind;
  /** discovery: the issuer's OpenID discovery document; jwks_uri: a URL; static: keys given once. */
  jwksSource: 'discovery' | 'jwks_uri' | 'static';
  jwksUri: string | null;
  /** kids of the keys given once (static). */
  staticKids: string[] | null;
  enabled: boolean;
  /** Names of the clients bound to its subjects. */
  clients: string[];
  createdAt: string;
  updatedAt: string;
}

async function toView(db: Db, row: store.TrustedIssuerRow): Promise<IssuerView> {
  return {
    id: row.id,
    name: row.name,
    issuer: row.issuer,
    kind: row.kind,
    jwksSource: row.jwks_source,
    jwksUri: row.jwks_uri,
    staticKids: row.jwks ? row.jwks.keys.map((key) => String(key.kid ?? '')) : null,
    enabled: row.enabled,
    clients: await store.listFederatedClientNames(db, row.id),
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

/** Development allows http on loopback hosts (the local issuers of tests and examples). */
export interface IssuerRules { development: boolean }

/** An https URL (http only on a loopback host, in development), without credentials or fragment. */
function checkUrl(value: string, field: string, rules: IssuerRules): string {
  const url = URL.parse(value);
  if (!url || url.username || url.password || url.hash || !url.hostname || value.length > 2000) {
    throw invalid(`${field} must be an absolute https URL without credentials or fragment`, field);
  }
  if (url.protocol !== 'https:' && !(rules.development && url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    throw invalid(`${field} must use https${rules.development ? ' (plain http only on a loopback host)' : ''}`, field);
  }
  return url.href;
}

export interface IssuerInput {
  name: string;
  /** The `iss` its tokens carry; for SPIFFE without `iss`, spiffe://<trust domain>. */
  issuer: string;
  kind?: IssuerKind;
  /** Exactly one of: discovery, jwksUri, jwks (a JWK Set: keys given once, e.g. from a file). */
  discovery?: boolean;
  jwksUri?: string;
  jwks?: unknown;
}

function checkKind(kind: unknown): IssuerKind {
  if (!(ISSUER_KINDS as readonly unknown[]).includes(kind)) throw invalid(`kind must be one of ${ISSUER_KINDS.join(', ')}`, 'kind');
  return kind as IssuerKind;
}

function checkIssuer(value: string, kind: IssuerKind, rules: IssuerRules): string {
  if (typeof value !== 'string' || !value) throw invalid('issuer is required', 'issuer');
  if (value.startsWith('spiffe://')) {
    if (kind !== 'spiffe' || spiffeTrustDomain(value) === undefined || value !== `spiffe://${spiffeTrustDomain(value)}`) {
      throw invalid('a spiffe:// issuer is a SPIFFE trust domain (spiffe://example.org) of kind spiffe', 'issuer');
    }
    return value;
  }
  // Compared exactly with `iss` (no normalisation: "https://x/" and "https://x" are two issuers).
  checkUrl(value, 'issuer', rules);
  return value;
}

/** Where the keys come from: exactly one source. */
function checkKeySource(input: Pick<IssuerInput, 'discovery' | 'jwksUri' | 'jwks'>, issuer: string, rules: IssuerRules):
  Pick<store.IssuerValues, 'jwksSource' | 'jwksUri' | 'jwks'> {
  const given = [input.discovery === true, input.jwksUri !== undefined, input.jwks !== undefined].filter(Boolean).length;
  if (given !== 1) throw invalid('give exactly one of discovery, jwksUri or jwks', 'discovery', 'jwksUri', 'jwks');
  if (input.discovery) {
    if (issuer.startsWith('spiffe://')) throw invalid('a spiffe:// issuer has no discovery document: give its bundle endpoint as jwksUri', 'discovery');
    return { jwksSource: 'discovery', jwksUri: null, jwks: null };
  }
  if (input.jwksUri !== undefined) return { jwksSource: 'jwks_uri', jwksUri: checkUrl(input.jwksUri, 'jwksUri', rules), jwks: null };
  // A SPIFFE bundle marks its JWT keys use "jwt-svid"; stored as signature keys.
  const keys = (input.jwks as { keys?: unknown[] } | null)?.keys;
  const normalised = Array.isArray(keys)
    ? { keys: keys.filter((key) => (key as { use?: unknown })?.use !== 'x509-svid').map((key) => ((key as { use?: unknown })?.use === 'jwt-svid' ? { ...(key as object), use: 'sig' } : key)) }
    : input.jwks;
  return { jwksSource: 'static', jwksUri: null, jwks: checkClientJwks(normalised, 'jwks') };
}

async function requireIssuer(db: Db, ref: string): Promise<store.TrustedIssuerRow> {
  const row = (await store.findIssuerById(db, ref)) ?? (await store.findIssuerByName(db, ref));
  if (!row) throw notFound(`unknown trusted issuer "${ref}"`);
  return row;
}

const uniqueConflict = (error: unknown, input: { name?: string; issuer?: string }) =>
  (isUniqueViolation(error) ? conflict(`a trusted issuer named "${input.name}" or for ${input.issuer} already exists`) : error);

export async function createIssuer(db: Db, input: IssuerInput, rules: IssuerRules, audit: AuditSink): Promise<IssuerView> {
  const name = checkName(input.name);
  const kind = checkKind(input.kind ?? 'oidc');
  const issuer = checkIssuer(input.issuer, kind, rules);
  const source = checkKeySource(input, issuer, rules);
  try {
    const view = await writeAndPropagate(db, ISSUER_CHANGED, async (trx) =>
      toView(trx, await store.insertIssuer(trx, randomId('iss_'), { name, issuer, kind, ...source })));
    audit.record({
      type: 'issuer.created', target: { type: 'issuer', id: view.id },
      details: { name, issuer, kind, jwksSource: view.jwksSource, jwksUri: view.jwksUri },
    });
    return view;
  } catch (error) {
    throw uniqueConflict(error, { name, issuer });
  }
}

export async function listIssuers(db: Db): Promise<IssuerView[]> {
  const rows = await store.listIssuers(db);
  return Promise.all(rows.map((row) => toView(db, row)));
}

export async function getIssuer(db: Db, ref: string): Promise<IssuerView> {
  return toView(db, await requireIssuer(db, ref));
}

export interface UpdateIssuerInput extends Partial<IssuerInput> { enabled?: boolean }

/** Renames, re-points the keys, or disables an issuer (its tokens are refused at once everywhere). */
export async function updateIssuer(db: Db, ref: string, input: UpdateIssuerInput, rules: IssuerRules, audit: AuditSink): Promise<IssuerView> {
  const name = input.name === undefined ? undefined : checkName(input.name);
  try {
    const view = await writeAndPropagate(db, ISSUER_CHANGED, async (trx) => {
      const row = await requireIssuer(trx, ref);
      const kind = input.kind === undefined ? row.kind : checkKind(input.kind);
      const issuer = input.issuer === undefined ? row.issuer : checkIssuer(input.issuer, kind, rules);
      if (input.issuer === undefined && input.kind !== undefined) checkIssuer(issuer, kind, rules);
      const keysGiven = input.discovery !== undefined || input.jwksUri !== undefined || input.jwks !== undefined;
      const source = keysGiven ? checkKeySource(input, issuer, rules) : {};
      if (input.enabled !== undefined && typeof input.enabled !== 'boolean') throw invalid('enabled must be true or false', 'enabled');
      const updated = await store.updateIssuer(trx, row.id, { name, issuer, kind, ...source, enabled: input.enabled });
      return toView(trx, updated ?? row);
    });
    audit.record({
      type: 'issuer.updated', target: { type: 'issuer', id: view.id },
      details: { name: view.name, fields: changedFields(input as Record<string, unknown>), enabled: view.enabled },
    });
    return view;
  } catch (error) {
    throw uniqueConflict(error, { name, issuer: input.issuer });
  }
}

/**
 * Deletes an issuer. Clients bound to it would be left unable to authenticate, so it is refused
 * while there are any, unless `force` (their bindings go with it).
 */
export async function deleteIssuer(db: Db, ref: string, options: { force?: boolean }, audit: AuditSink): Promise<IssuerView> {
  const view = await writeAndPropagate(db, ISSUER_CHANGED, async (trx) => {
    const row = await requireIssuer(trx, ref);
    const found = await toView(trx, row);
    if (found.clients.length && !options.force) {
      throw conflict(`trusted issuer ${row.name} authenticates ${found.clients.join(', ')}; rebind or delete them, or delete with force`);
    }
    await store.deleteIssuer(trx, row.id);
    return found;
  });
  audit.record({ type: 'issuer.deleted', target: { type: 'issuer', id: view.id }, details: { name: view.name, clients: view.clients } });
  return view;
}

// ---- binding clients

export interface FederationInput {
  /** The trusted issuer (id or name). */
  issuer: string;
  /** The token's `sub`, exactly (system:serviceaccount:shop:orders, spiffe://..., repo:acme/shop:ref:refs/heads/main). */
  subject: string;
  /** Claims the token must carry with exactly these values (repository_owner=acme, ...). */
  claims?: Record<string, string>;
}

export interface FederationView { issuer: string; issuerId: string; subject: string; claims: Record<string, string> }

/** Checks a binding and resolves its issuer; inside the caller's transaction. */
export async function checkFederation(trx: Db, input: FederationInput): Promise<{ issuerId: string; subject: string; claims: Record<string, string> }> {
  if (typeof input.issuer !== 'string' || !input.issuer) throw invalid('federatedIssuer names a trusted issuer', 'federatedIssuer');
  const row = (await store.findIssuerById(trx, input.issuer)) ?? (await store.findIssuerByName(trx, input.issuer));
  if (!row) throw invalid(`unknown trusted issuer "${input.issuer}" (postern issuers list)`, 'federatedIssuer');
  const subject = typeof input.subject === 'string' ? input.subject : '';
  if (!subject || subject.length > 1000 || /[\x00-\x1f]/.test(subject)) throw invalid('federatedSubject must be 1 to 1000 printable characters', 'federatedSubject');
  if (row.kind === 'spiffe') {
    const domain = spiffeTrustDomain(subject);
    if (!domain || (row.issuer.startsWith('spiffe://') && row.issuer !== `spiffe://${domain}`)) {
      throw invalid(`federatedSubject must be a SPIFFE ID of ${row.issuer}`, 'federatedSubject');
    }
  }
  const claims: Record<string, string> = {};
  const entries = Object.entries(input.claims ?? {});
  if (entries.length > MAX_CLAIMS) throw invalid(`at most ${MAX_CLAIMS} required claims`, 'federatedClaims');
  for (const [name, value] of entries) {
    if (!/^[A-Za-z0-9_.:/-]{1,100}$/.test(name) || typeof value !== 'string' || value.length > 1000) {
      throw invalid(`claim "${name}" must be name=value (a name of letters, digits, "_.:/-"; a string value)`, 'federatedClaims');
    }
    if (['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti'].includes(name)) throw invalid(`claim "${name}" is checked already; require other claims`, 'federatedClaims');
    claims[name] = value;
  }
  return { issuerId: row.id, subject, claims };
}

export async function bindFederation(trx: Db, clientId: string, input: FederationInput): Promise<void> {
  const checked = await checkFederation(trx, input);
  try {
    await store.upsertFederation(trx, { clientId, ...checked });
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`another client is bound to subject "${checked.subject}" of this issuer`);
    throw error;
  }
}

export async function describeFederation(db: Db, clientId: string): Promise<FederationView | null> {
  const row = await store.findFederationByClient(db, clientId);
  if (!row) return null;
  const issuer = await store.findIssuerById(db, row.issuer_id);
  return { issuer: issuer?.name ?? row.issuer_id, issuerId: row.issuer_id, subject: row.subject, claims: row.claims };
}
