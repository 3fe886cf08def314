// Introspection of a service's opaque access token (a ClientCredentials token) without the
// provider's detour, for the introspection fast path (introspection-fast-path.ts). The answer is
// the provider's (lib/actions/introspection.js) after TokenPolicy.middleware() has finished it:
// the same fields, the same permission check (TokenPolicy.mayIntrospect).
//
// A token's stored row never changes once issued; it only goes away. So the rows of tokens that
// were found are remembered (bounded, until they expire), and everything that can end a token is
// read from what every process keeps current before a write returns: the revocation list (RFC
// 7009 revocation puts the token's key there before the provider deletes the row, on every
// process: TokenPolicy.recordOpaqueRevocation), and the Directory for the client (disabled,
// deleted, or tokens cut off: the only other ways a service's stored tokens are deleted). A
// token a process has remembered is therefore inactive there as soon as it is anywhere.
// Tokens that were not found are not remembered: the value is the caller's choice.
import { createHash } from 'node:crypto';
import type Provider from 'oidc-provider';
import { opaqueTokenKey } from '../domain/token-exchange.ts';
import type { Directory } from './directory.ts';
import type { TokenPolicy } from './token-policy.ts';

/** What the provider stores for a ClientCredentials token, as its model gives it back. */
interface ServiceToken {
  jti: string;
  clientId: string;
  iat: number;
  exp: number;
  aud?: string | string[];
  scope?: string;
  extra?: Record<string, unknown>;
  jkt?: string;
  'x5t#S256'?: string;
  readonly tokenType: string;
  readonly isValid: boolean;
  isSenderConstrained(): boolean;
}

/** The shape of the provider's opaque token values (base64url); anything else is the provider's. */
const OPAQUE_VALUE = /^[A-Za-z0-9_-]{32,128}$/;

/** Tokens remembered per process: the rows of the tokens gateways and services introspect. */
const REMEMBERED_TOKENS = 10_000;

export function isOpaqueValue(token: string): boolean {
  return OPAQUE_VALUE.test(token);
}

export class OpaqueIntrospection {
  #provider: Provider;
  #directory: Directory;
  #tokenPolicy: TokenPolicy;
  /** Found tokens by a digest of their value (the value itself is a bearer credential). */
  #remembered = new Map<string, ServiceToken>();

  constructor(provider: Provider, directory: Directory, tokenPolicy: TokenPolicy) {
    this.#provider = provider;
    this.#directory = directory;
    this.#tokenPolicy = tokenPolicy;
  }

  /** A service's token by its value, when one is stored and unexpired; undefined otherwise. */
  async #find(value: string): Promise<ServiceToken | undefined> {
    const key = createHash('sha256').update(value).digest('base64url');
    const remembered = this.#remembered.get(key);
    if (remembered) {
      if (remembered.isValid) return remembered;
      this.#remembered.delete(key);
      return undefined;
    }
    const found = await (this.#provider.ClientCredentials as unknown as { find(value: string): Promise<ServiceToken | undefined> })
      .find(value);
    if (!found?.isValid || found.jti !== value) return undefined;
    if (this.#remembered.size >= REMEMBERED_TOKENS) this.#remembered.delete(this.#remembered.keys().next().value!);
    this.#remembered.set(key, found);
    return found;
  }

  /**
   * The answer for `value` asked by `callerId`, or undefined when the value is no usable service
   * token here (not found, expired): the provider then answers, as it would have.
   */
  async introspect(callerId: string, value: string): Promise<Record<string, unknown> | undefined> {
    const token = await this.#find(value);
    if (!token) return undefined;
    // Revoked (RFC 7009) on any process, or its client disabled, deleted or cut off since.
    if (await this.#directory.isRevoked(opaqueTokenKey(value))) return { active: false };
    if (!(await this.#tokenPolicy.mayIntrospect(callerId, token.clientId, token.aud, token.iat, token.extra))) {
      return { active: false };
    }
    // The provider's fields, in its order (extra first, so that none of them can replace one).
    const cnf: Record<string, string> | undefined = token.isSenderConstrained() ? {} : undefined;
    if (cnf && token['x5t#S256']) cnf['x5t#S256'] = token['x5t#S256'];
    if (cnf && token.jkt) cnf.jkt = token.jkt;
    const answer: Record<string, unknown> = {
      ...token.extra,
      active: true,
      client_id: token.clientId,
      exp: token.exp,
      iat: token.iat,
      iss: this.#provider.issuer,
      aud: token.aud,
      scope: token.scope || undefined,
      cnf,
      token_type: token.tokenType,
    };
    // What TokenPolicy.middleware() does to the provider's answer: a service's token names the
    // service as its subject (as RFC 9068 JWTs do), and Postern's bookkeeping stays inside.
    if (!answer.sub) answer.sub = token.clientId;
    delete answer.lin;
    delete answer.gid;
    for (const name of Object.keys(answer)) if (answer[name] === undefined) delete answer[name];
    return answer;
  }
}
