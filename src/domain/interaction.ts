// A sign-in interaction (the provider's login and consent prompts) as Postern's pages see it.
// Shared by the pages (http/interactions.ts) and the provider's side (oidc/interactions.ts), which
// meet only in app.ts.

/** What a consent prompt asks for: OpenID scopes and claims, and API scopes by resource. */
export interface ConsentRequest {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

export interface Interaction {
  uid: string;
  /** The prompt it is at: login or consent. */
  prompt: string;
  /** What the consent prompt asks for. */
  consentRequest: ConsentRequest;
  /** The authorization request's parameters (client_id, redirect_uri, login_hint, ...). */
  params: Record<string, unknown>;
  /** The person signed in, once the login prompt is done. */
  accountId: string | undefined;
  /** The grant being extended, when the person consented to this app before. */
  grantId: string | undefined;
}
