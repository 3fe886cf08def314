// What a new client may be, checked before anything is stored: its name, grant types, token
// endpoint auth method and the credentials that go with it, its networks and token bindings, and
// the metadata all of that becomes. Operators' clients (CLI, admin API) and self-registered
// services (RFC 7591) meet their own rules here and are then stored the one same way
// (clients.ts insertNewClient).
import { CERTIFICATE_AUTH_METHODS, SECRET_AUTH_METHODS } from '../domain/client-keys.ts';
import { FEDERATED_AUTH_METHOD } from '../domain/trusted-issuers.ts';
import type { FederationInput } from './trusted-issuers.ts';
import { checkNetworks, credentialMetadata, credentialsOf, type ClientCredentialsInput } from './client-auth.ts';
import { checkSignInSettings, PUBLIC_AUTH_METHOD } from './client-sign-in.ts';
import { invalid } from './errors.ts';
import { checkName, checkOneBinding } from './validation.ts';

export const SUPPORTED_GRANTS = ['client_credentials', 'authorization_code', 'refresh_token'] as const;
export const AUTH_METHODS = [
  'client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth',
  FEDERATED_AUTH_METHOD,
] as const;

export interface CreateClientInput extends ClientCredentialsInput {
  name: string;
  grantTypes?: string[];
  roles?: string[];
  /**
   * Defaults to private_key_jwt when jwks or jwksUri is given, tls_client_auth with tlsSubject,
   * self_signed_tls_client_auth with certificates, else client_secret_basic.
   */
  tokenEndpointAuthMethod?: string;
  allowedNetworks?: string[];
  requireDpop?: boolean;
  /** Bind its tokens to its TLS certificate; by default yes for certificate authentication. */
  requireMtls?: boolean;
  /** Sign-in apps (authorization_code). */
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  /** A SPA or native app: no secret, PKCE only. */
  public?: boolean;
  /** An app of the deployer's own: no consent screen. */
  firstParty?: boolean;
  /** Authenticates with its platform's token: a trusted issuer, a subject, required claims (federated_jwt). */
  federated?: FederationInput;
}

/** A client that passed its rules, ready to be stored (its id is given when it is). */
export interface NewClient {
  name: string;
  grantTypes: string[];
  authMethod: string;
  /** Its provider metadata, but for client_id and client_name (added when stored). */
  metadata: Record<string, unknown>;
  allowedNetworks: string[];
  /** Whether it authenticates with a secret Postern issues. */
  usesSecret: boolean;
}

/** The auth method a client asked for, or the one its credentials imply. */
function chooseAuthMethod(input: CreateClientInput): string {
  if (input.public) {
    if (input.tokenEndpointAuthMethod !== undefined) throw invalid('a public client has no token endpoint auth method', 'tokenEndpointAuthMethod');
    return PUBLIC_AUTH_METHOD;
  }
  if (input.federated !== undefined) {
    if (input.tokenEndpointAuthMethod !== undefined && input.tokenEndpointAuthMethod !== FEDERATED_AUTH_METHOD) {
      throw invalid(`a federated client authenticates with ${FEDERATED_AUTH_METHOD}`, 'tokenEndpointAuthMethod');
    }
    return FEDERATED_AUTH_METHOD;
  }
  if (input.tokenEndpointAuthMethod === FEDERATED_AUTH_METHOD) {
    throw invalid(`${FEDERATED_AUTH_METHOD} needs a trusted issuer and subject (federatedIssuer, federatedSubject)`, 'federatedIssuer');
  }
  const method = input.tokenEndpointAuthMethod
    ?? (input.tlsSubject !== undefined ? 'tls_client_auth'
      : input.certificates !== undefined ? 'self_signed_tls_client_auth'
        : input.jwks !== undefined || input.jwksUri !== undefined ? 'private_key_jwt' : 'client_secret_basic');
  if (!(AUTH_METHODS as readonly string[]).includes(method)) {
    throw invalid(`token endpoint auth method must be one of ${AUTH_METHODS.join(', ')}`, 'tokenEndpointAuthMethod');
  }
  return method;
}

/** An operator's client (CLI, admin API): a service or a sign-in app, with any auth method. */
export function checkNewClient(input: CreateClientInput): NewClient {
  const name = checkName(input.name);
  const { grantTypes, redirectUris, postLogoutRedirectUris, signIn } = checkSignInSettings(input, SUPPORTED_GRANTS);
  const authMethod = chooseAuthMethod(input);
  const keys = credentialMetadata(authMethod, credentialsOf(input));
  // RFC 8705 §3: a client that authenticates with its certificate gets tokens bound to it,
  // unless asked otherwise (or bound to a DPoP key instead); any other client only when asked.
  const requireMtls = input.requireMtls ?? (CERTIFICATE_AUTH_METHODS.includes(authMethod) && !input.requireDpop);
  checkOneBinding(Boolean(input.requireDpop), requireMtls);
  const allowedNetworks = checkNetworks(input.allowedNetworks ?? []);
  return {
    name,
    grantTypes,
    authMethod,
    metadata: {
      grant_types: grantTypes,
      response_types: signIn ? ['code'] : [],
      redirect_uris: redirectUris,
      ...(postLogoutRedirectUris.length ? { post_logout_redirect_uris: postLogoutRedirectUris } : {}),
      token_endpoint_auth_method: authMethod,
      ...keys,
      ...(input.requireDpop ? { dpop_bound_access_tokens: true } : {}),
      ...(requireMtls ? { tls_client_certificate_bound_access_tokens: true } : {}),
      ...(input.firstParty ? { first_party: true } : {}),
    },
    allowedNetworks,
    // Only for secret-based methods: a private_key_jwt client has nothing that could be guessed.
    usesSecret: SECRET_AUTH_METHODS.includes(authMethod),
  };
}

/**
 * The rules a self-registered client meets (RFC 7591): a valid unique name, client_credentials
 * only, a secret Postern issues. Everything else is for operators (CLI, admin API).
 */
export function checkServiceClient(input: { name: string; grantTypes?: string[]; tokenEndpointAuthMethod?: string }): NewClient {
  const name = checkName(input.name);
  const grantTypes = [...new Set(input.grantTypes?.length ? input.grantTypes : ['client_credentials'])];
  for (const grant of grantTypes) {
    if (grant !== 'client_credentials') {
      throw invalid(`unsupported grant type "${grant}" (a registered service uses client_credentials)`, 'grantTypes');
    }
  }
  const authMethod = input.tokenEndpointAuthMethod ?? 'client_secret_basic';
  if (!SECRET_AUTH_METHODS.includes(authMethod)) {
    throw invalid(`token endpoint auth method must be one of ${SECRET_AUTH_METHODS.join(', ')}`, 'tokenEndpointAuthMethod');
  }
  return {
    name,
    grantTypes,
    authMethod,
    metadata: { grant_types: grantTypes, response_types: [], redirect_uris: [], token_endpoint_auth_method: authMethod },
    allowedNetworks: [],
    usesSecret: true,
  };
}
