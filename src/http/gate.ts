// The decision endpoint gateways ask before passing a request on (docs/gateways.md):
// `/gate/auth-request` (nginx auth_request), `/gate/forward-auth` (Traefik forwardAuth, Caddy
// forward_auth) and `/gate/ext-authz/...` (Envoy ext_authz over HTTP). Spelled exactly so: any
// other spelling goes on to the 404 (src/domain/endpoints.ts explains why).
//
// It runs before the public listener's body limit, request guard and request limits (app.ts): it
// reads no body, refuses every path and header value it cannot parse safely itself, and nothing
// it is sent reaches the database unhashed (an opaque token is looked up by its keyed hash).
//
// Only a configured gateway is believed (GATE_TRUSTED_GATEWAYS, by the TCP peer's address, never
// X-Forwarded-For): the endpoint trusts the headers that describe the original request, and
// whoever could call it directly could describe any request they like.
import type Koa from 'koa';
import { FORWARDED_CLIENT_CERT_HEADER, forwardedClientCertThumbprint } from '../domain/forwarded-client-cert.ts';
import { GATE_CONTRACT_PATHS, GATE_PATH, gateContractOf, readOriginalRequest, type OriginalRequest } from '../domain/gate-request.ts';
import { isAddressAllowed, type Network } from '../domain/networks.ts';
import type { Logger } from '../platform/logger.ts';
import type { Metrics } from '../platform/metrics.ts';
import type { GateDecision, PresentedCredentials } from '../services/gate.ts';

export interface GateEndpointDeps {
  /** GATE_TRUSTED_GATEWAYS: empty, the endpoint refuses everyone. */
  trustedGateways: readonly Network[];
  decide(original: OriginalRequest, presented: PresentedCredentials): Promise<GateDecision>;
  /** x5t#S256 of the client certificate of the request, as forwarded by a trusted proxy. */
  certificateThumbprint(req: Koa.Context['req']): string | undefined;
  /**
   * GATE_ENVOY_CLIENT_CERT: the proxies (TLS_CLIENT_CERT_PROXIES) whose x-forwarded-client-cert
   * the ext-authz contract reads instead of certificateThumbprint. Undefined: off.
   */
  envoyCertificateProxies?: readonly Network[];
  metrics: Metrics;
  logger: Logger;
}

/** One header of the request as Node gives it (lower-case name), or undefined when absent or empty. */
function headerOf(headers: Koa.Context['req']['headers'], name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * Whether the TCP peer of a connection is in `networks`: parsed once per connection, whose peer
 * never changes, rather than once per request (a gateway keeps its connections open).
 */
function peerIn(known: WeakMap<object, boolean>, req: Koa.Context['req'], networks: readonly Network[]): boolean {
  let allowed = known.get(req.socket);
  if (allowed === undefined) {
    allowed = networks.length > 0 && isAddressAllowed(req.socket.remoteAddress, networks);
    known.set(req.socket, allowed);
  }
  return allowed;
}

function answer(ctx: Koa.Context, status: number, error: string, description: string): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error, error_description: description };
}

export function gateEndpoint(deps: GateEndpointDeps): Koa.Middleware {
  const { metrics } = deps;
  let warnedUntrusted = false;
  let warnedUnreadable = false;
  const gateways = new WeakMap<object, boolean>();
  const certificateProxies = new WeakMap<object, boolean>();
  /** The certificate Envoy describes, believed from a certificate proxy only (as TLS_CLIENT_CERT_HEADER is). */
  const envoyThumbprint = (req: Koa.Context['req'], proxies: readonly Network[]): string | undefined => {
    // Node joins repeated x-forwarded-client-cert headers with ", ": several elements, refused.
    const value = headerOf(req.headers, FORWARDED_CLIENT_CERT_HEADER);
    if (value === undefined || !peerIn(certificateProxies, req, proxies)) return undefined;
    const thumbprint = forwardedClientCertThumbprint(value);
    if (thumbprint === undefined && !warnedUnreadable) {
      warnedUnreadable = true;
      deps.logger.warn('x-forwarded-client-cert could not be read (one element, as Envoy sets it with forward_client_cert_details: SANITIZE_SET): certificate-bound tokens are refused');
    }
    return thumbprint;
  };
  return async (ctx, next) => {
    const raw = ctx.req.url ?? '';
    if (!raw.startsWith(`${GATE_PATH}/`)) return next();
    const query = raw.indexOf('?');
    const found = gateContractOf(query < 0 ? raw : raw.slice(0, query));
    if (!found) return next();
    const started = process.hrtime.bigint();
    let outcome = 'refused';
    let route = 'none';
    try {
      // The TCP peer: a forwarded address is the caller's word.
      if (!peerIn(gateways, ctx.req, deps.trustedGateways)) {
        if (!warnedUntrusted) {
          warnedUntrusted = true;
          deps.logger.warn({ address: ctx.req.socket.remoteAddress }, 'decision request from an address outside GATE_TRUSTED_GATEWAYS refused');
        }
        return answer(ctx, 403, 'access_denied', 'this address is not a trusted gateway (GATE_TRUSTED_GATEWAYS)');
      }
      const rest = found.contract === 'ext-authz' ? raw.slice(GATE_CONTRACT_PATHS['ext-authz'].length) : '';
      const { headers } = ctx.req;
      const original = readOriginalRequest(found.contract, ctx.method, (name) => headerOf(headers, name), rest);
      if ('error' in original) {
        // A gateway that sends too little is misconfigured (400, its log says so); a path that
        // cannot be matched safely is the client's doing: refused as forbidden, which every
        // gateway passes on (nginx turns anything but 401 and 403 into a 500).
        return original.error === 'bad_gateway_request'
          ? answer(ctx, 400, 'invalid_request', original.description)
          : answer(ctx, 403, 'access_denied', original.description);
      }
      const decision = await deps.decide(original, {
        authorization: headerOf(headers, 'authorization'),
        dpop: headers.dpop,
        certificateThumbprint: found.contract === 'ext-authz' && deps.envoyCertificateProxies
          ? envoyThumbprint(ctx.req, deps.envoyCertificateProxies)
          : deps.certificateThumbprint(ctx.req),
      });
      outcome = decision.outcome;
      route = decision.route;
      ctx.status = decision.status;
      ctx.set(decision.headers);
      if (decision.body) {
        ctx.body = decision.body;
      } else {
        // Exactly 200 with no body on allow: Envoy allows on 200 only, nginx and Caddy ignore it.
        // The type koa would give the empty text, set here: no lookup on every allow.
        ctx.set('Content-Type', 'text/plain; charset=utf-8');
        ctx.body = '';
      }
    } finally {
      metrics.gateDecisions.inc({ route, outcome });
      metrics.gateDuration.observe({ outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  };
}
