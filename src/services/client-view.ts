// How a client is shown by the CLI and the admin API: its settings read back from the stored
// metadata, its roles and its live secrets (never a secret's value).
import * as clients from '../store/clients.ts';
import * as roles from '../store/roles.ts';
import type { Db } from '../db/tables.ts';
import { TLS_SUBJECT_FIELDS, type TlsSubject } from '../domain/certificates.ts';
import { describeClientCertificates, type ClientJwks } from './client-auth.ts';
import { PUBLIC_AUTH_METHOD } from './client-sign-in.ts';
import { exchangeView, TOKEN_EXCHANGE_GRANT } from './exchange-permissions.ts';
import { describeFederation, type FederationView } from './trusted-issuers.ts';

export interface ClientView {
  clientId: string;
  name: string;
  enabled: boolean;
  grantTypes: string[];
  tokenEndpointAuthMethod: string;
  /** private_key_jwt: the registered public keys, or the URL they are fetched from. */
  jwks: ClientJwks | null;
  jwksUri: string | null;
  /** CIDR ranges the client may authenticate from; empty: anywhere. */
  allowedNetworks: string[];
  /** Tokens of this client must be DPoP-bound (RFC 9449 §5.2 dpop_bound_access_tokens). */
  requireDpop: boolean;
  /** tls_client_auth: the certificate subject it must present (RFC 8705 §2.1.2). */
  tlsSubject: TlsSubject | null;
  /** self_signed_tls_client_auth: its registered certificates. */
  certificates: { thumbprint: string; subject: string; expiresAt: string }[];
  /** Its access tokens are bound to its TLS certificate (RFC 8705 §3 tls_client_certificate_bound_access_tokens). */
  requireMtls: boolean;
  /** Sign-in apps: where codes may be sent, and where people may go after logging out. */
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  /** A public client has no secret (token endpoint auth method "none"). */
  public: boolean;
  /** First-party apps skip the consent screen. */
  firstParty: boolean;
  roles: string[];
  secrets: { id: string; createdAt: string; expiresAt: string | null }[];
  /** Token exchange (RFC 8693): the scopes of other APIs it may ask for on others' behalf. */
  mayExchange: { api: string; scopes: string[] }[];
  /** It may exchange without being named in the new token's `act` claim. */
  mayImpersonate: boolean;
  /** The APIs it serves: it may exchange the tokens issued for them. */
  ownsApis: string[];
  /** federated_jwt: the trusted issuer, subject and claims its platform's token must carry. */
  federation: FederationView | null;
  createdAt: string;
}

export interface StoredMetadata {
  grant_types?: string[];
  token_endpoint_auth_method?: string;
  jwks?: ClientJwks;
  jwks_uri?: string;
  dpop_bound_access_tokens?: boolean;
  tls_client_certificate_bound_access_tokens?: boolean;
  tls_client_auth_subject_dn?: string;
  tls_client_auth_san_dns?: string;
  tls_client_auth_san_ip?: string;
  tls_client_auth_san_email?: string;
  tls_client_auth_san_uri?: string;
  redirect_uris?: string[];
  post_logout_redirect_uris?: string[];
  first_party?: boolean;
}

export async function toView(db: Db, row: clients.ClientRow, now = new Date()): Promise<ClientView> {
  const metadata = row.metadata as StoredMetadata;
  const [secrets, exchange] = await Promise.all([
    clients.listClientSecrets(db, row.client_id),
    exchangeView(db, row.client_id, row.may_impersonate),
  ]);
  const grantTypes = metadata.grant_types ?? [];
  return {
    clientId: row.client_id,
    name: row.name,
    enabled: row.enabled,
    // An exchange permission implies the grant type (docs/token-exchange.md).
    grantTypes: exchange.mayExchange.length && !grantTypes.includes(TOKEN_EXCHANGE_GRANT) ? [...grantTypes, TOKEN_EXCHANGE_GRANT] : grantTypes,
    tokenEndpointAuthMethod: metadata.token_endpoint_auth_method ?? 'client_secret_basic',
    jwks: metadata.jwks ?? null,
    jwksUri: metadata.jwks_uri ?? null,
    allowedNetworks: row.allowed_networks,
    requireDpop: metadata.dpop_bound_access_tokens === true,
    tlsSubject: storedTlsSubject(metadata),
    certificates: metadata.token_endpoint_auth_method === 'self_signed_tls_client_auth' ? describeClientCertificates(metadata.jwks) : [],
    requireMtls: metadata.tls_client_certificate_bound_access_tokens === true,
    redirectUris: metadata.redirect_uris ?? [],
    postLogoutRedirectUris: metadata.post_logout_redirect_uris ?? [],
    public: metadata.token_endpoint_auth_method === PUBLIC_AUTH_METHOD,
    firstParty: metadata.first_party === true,
    roles: (await roles.listRolesOfClient(db, row.client_id)).map((role) => role.name),
    secrets: secrets
      .filter((secret) => !secret.expires_at || secret.expires_at > now)
      .map((secret) => ({
        id: secret.id,
        createdAt: secret.created_at.toISOString(),
        expiresAt: secret.expires_at?.toISOString() ?? null,
      })),
    ...exchange,
    federation: await describeFederation(db, row.client_id),
    createdAt: row.created_at.toISOString(),
  };
}

function storedTlsSubject(metadata: StoredMetadata): TlsSubject | null {
  for (const [field, property] of Object.entries(TLS_SUBJECT_FIELDS)) {
    const value = metadata[property];
    if (typeof value === 'string') return { field: field as TlsSubject['field'], value };
  }
  return null;
}
