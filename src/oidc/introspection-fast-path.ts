// Introspection of Postern's JWT access tokens and of services' opaque tokens without the
// provider's detour. oidc-provider authenticates the caller, then refuses every JWT by throwing
// unsupported_token_type, which TokenPolicy.middleware() replaces with the real answer; the throw
// and its error handling cost more than the answer itself. For an opaque token it looks the row
// up on every request, where opaque-introspection.ts remembers the rows it found and reads what
// can end a token from memory every process keeps current. This path answers the plain case
// directly: a JWT-shaped token or a service's opaque token, a caller authenticating with its
// client secret (Basic or in the body) and not limited to some networks (that check belongs to
// the provider's client lookup), nothing unusual. Anything else, including every failure and
// every other kind of token, goes to the provider untouched (its body is put back on the
// stream), so every error response still comes from the provider.
import { decodeProtectedHeader } from 'jose';
import type Provider from 'oidc-provider';
import { SECRET_AUTH_METHODS } from '../domain/client-keys.ts';
import { callerOf, readPlainForm, type FastPath } from './fast-path-request.ts';
import { isOpaqueValue, type OpaqueIntrospection } from './opaque-introspection.ts';
import type { TokenPolicy } from './token-policy.ts';

const ALLOWED_PARAMS = new Set(['token', 'token_type_hint', 'client_id', 'client_secret']);

function isJwt(token: string): boolean {
  // An opaque token has no dots: it goes on without the cost of a failed parse (an exception).
  if (token.split('.', 4).length !== 3) return false;
  try {
    return decodeProtectedHeader(token).typ === 'at+jwt';
  } catch {
    return false;
  }
}

export function introspectionFastPath(
  provider: Provider,
  tokenPolicy: TokenPolicy,
  path: string,
  maxBodyBytes: number,
  /** Whether a client may take this path: false for clients limited to some networks. */
  mayUseFastPath: (clientId: string) => Promise<boolean>,
  /** Told of each request answered here. */
  onAnswer: () => void = () => {},
  /** Answers for services' opaque tokens; without it, those go to the provider. */
  opaque?: OpaqueIntrospection,
): FastPath {
  return async (request) => {
    const params = await readPlainForm(request, path, maxBodyBytes, ALLOWED_PARAMS);
    const token = params?.get('token');
    if (!params || !token) return undefined;
    const jwt = isJwt(token);
    // An opaque token with a hint naming another kind is the provider's (it looks there first).
    const hint = params.get('token_type_hint');
    const opaqueToken = !jwt && opaque !== undefined && isOpaqueValue(token) && (hint === null || hint === 'access_token');
    if (!jwt && !opaqueToken) return undefined;
    const caller = callerOf(request.authorization, params);
    if (!caller || !(await mayUseFastPath(caller.clientId))) return undefined;
    const client = await provider.Client.find(caller.clientId);
    if (!client || !SECRET_AUTH_METHODS.includes(client.tokenEndpointAuthMethod ?? '')
      || !(await (client as unknown as { compareClientSecret(secret: string): Promise<boolean> })
        .compareClientSecret(caller.secret))) {
      return undefined;
    }
    const answer = jwt ? await tokenPolicy.introspectJwt(client.clientId, token) : await opaque!.introspect(client.clientId, token);
    if (!answer) return undefined;
    onAnswer();
    return { status: 200, body: answer, clientId: client.clientId };
  };
}
