// The rules for sign-in apps (authorization code + PKCE): grant types and redirect URIs.
import { invalid } from './errors.ts';

/** Public clients (SPAs, native apps) cannot keep a secret: PKCE alone protects their codes. */
export const PUBLIC_AUTH_METHOD = 'none';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Redirect URIs are compared exactly (RFC 6749 §3.1.2, OAuth 2.0 Security BCP §4.1.3): absolute,
 * no fragment, https, or http on a loopback address; native public apps may also use a
 * private-use scheme in reverse-domain form (RFC 8252 §7.1).
 */
export function checkRedirectUris(values: readonly string[], publicClient: boolean, field: string): string[] {
  const uris = [...new Set(values)];
  for (const value of uris) {
    const url = URL.parse(value);
    const problem = !url || value.includes('#') || /\s/.test(value) ? 'must be an absolute URI without a fragment'
      : url.protocol === 'https:' ? undefined
        : url.protocol === 'http:' ? (LOOPBACK_HOSTS.has(url.hostname) ? undefined : 'must use https (http only on a loopback address)')
          : publicClient && /^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+:$/i.test(url.protocol) ? undefined
            : 'must use https (or, for a public native app, a private-use scheme like com.example.app:/callback)';
    if (problem) throw invalid(`redirect URI "${value}" ${problem}`, field);
  }
  return uris;
}

/**
 * The grant types of a new client, defaulting to client_credentials. Sign-in apps get refresh
 * tokens (when the person grants offline_access) without asking twice.
 */
export function checkGrantTypes(requested: readonly string[] | undefined, supported: readonly string[], publicClient: boolean): string[] {
  const grants = new Set(requested?.length ? requested : ['client_credentials']);
  for (const grant of grants) {
    if (!supported.includes(grant)) {
      throw invalid(`unsupported grant type "${grant}" (supported: ${supported.join(', ')})`, 'grantTypes');
    }
  }
  if (grants.has('authorization_code')) grants.add('refresh_token');
  if (grants.has('refresh_token') && !grants.has('authorization_code')) {
    throw invalid('the refresh_token grant needs authorization_code', 'grantTypes');
  }
  if (publicClient && grants.has('client_credentials')) {
    throw invalid('a public client has no credentials, so it cannot use client_credentials', 'grantTypes');
  }
  return [...grants];
}

export interface SignInSettings {
  grantTypes: string[];
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  signIn: boolean;
}

/** Checks what a sign-in app registers; a service (no authorization_code) registers none of it. */
export function checkSignInSettings(
  input: { grantTypes?: string[]; redirectUris?: string[]; postLogoutRedirectUris?: string[]; public?: boolean; firstParty?: boolean },
  supported: readonly string[],
): SignInSettings {
  const publicClient = input.public === true;
  const grantTypes = checkGrantTypes(input.grantTypes, supported, publicClient);
  const signIn = grantTypes.includes('authorization_code');
  const redirectUris = checkRedirectUris(input.redirectUris ?? [], publicClient, 'redirectUris');
  const postLogoutRedirectUris = checkRedirectUris(input.postLogoutRedirectUris ?? [], publicClient, 'postLogoutRedirectUris');
  if (signIn && redirectUris.length === 0) throw invalid('an authorization_code client needs at least one redirect URI', 'redirectUris');
  if (!signIn && (redirectUris.length || postLogoutRedirectUris.length || input.firstParty || publicClient)) {
    throw invalid('redirect URIs, public and first-party apply only to authorization_code clients', 'redirectUris');
  }
  return { grantTypes, redirectUris, postLogoutRedirectUris, signIn };
}

/** The sign-in settings a client keeps in its provider metadata. */
interface SignInMetadata {
  grant_types?: string[];
  token_endpoint_auth_method?: string;
  redirect_uris?: string[];
  post_logout_redirect_uris?: string[];
}

/**
 * Replaces a sign-in app's redirect URIs, or where people may return after logging out, in its
 * metadata, under the rules of its creation (checkSignInSettings): an authorization_code client
 * only, at least one redirect URI, each checked by checkRedirectUris for a public client or not.
 * An empty list of post-logout redirect URIs removes them.
 */
export function replaceRedirectUris(
  metadata: SignInMetadata,
  input: { redirectUris?: readonly string[]; postLogoutRedirectUris?: readonly string[] },
): void {
  const field = input.redirectUris !== undefined ? 'redirectUris' : 'postLogoutRedirectUris';
  if (!(metadata.grant_types ?? []).includes('authorization_code')) {
    throw invalid('redirect URIs apply only to authorization_code clients (sign-in apps)', field);
  }
  const publicClient = metadata.token_endpoint_auth_method === PUBLIC_AUTH_METHOD;
  if (input.redirectUris !== undefined) {
    const uris = checkRedirectUris(input.redirectUris, publicClient, 'redirectUris');
    if (uris.length === 0) throw invalid('an authorization_code client needs at least one redirect URI', 'redirectUris');
    metadata.redirect_uris = uris;
  }
  if (input.postLogoutRedirectUris !== undefined) {
    const uris = checkRedirectUris(input.postLogoutRedirectUris, publicClient, 'postLogoutRedirectUris');
    if (uris.length) metadata.post_logout_redirect_uris = uris;
    else delete metadata.post_logout_redirect_uris;
  }
}
