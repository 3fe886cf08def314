// The decision endpoint gateways ask before passing a request on (docs/gateways.md):
// `/gate/auth-request` (nginx auth_request), `/gate/forward-auth` (Traefik forwardAuth, Caddy
// forward_auth) and `/gate/ext-authz/...` (Envoy ext_authz over HTTP). Spelled exactly so: any
// other spelling goes on to the 404 (src/domain/endpoints.ts explains why).
//
// A gateway asks before every request it passes on, so the endpoint answers before Koa, on the
// public listener's lane (http/koa-app.ts): Koa's context, middleware chain and response cost a
// sixth of a decision. What the middleware in front of it did for these requests is done here
// with the same functions: the x-request-id, Pragma: no-cache with no-store, Connection: close
// while draining, the request metrics and access-log line, and a 500 with the request id for
// anything unexpected.
//
// It never reaches the body limit, request guard and request limits (app.ts): it reads no body,
// refuses every path and header value it cannot parse safely itself, and nothing it is sent
// reaches the database unhashed (an opaque token is looked up by its keyed hash).
//
// Only a configured gateway is believed (GATE_TRUSTED_GATEWAYS, by the TCP peer's address, never
// X-Forwarded-For): the endpoint trusts the headers that describe the original request, and
// whoever could call it directly could describe any request they like.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { FORWARDED_CLIENT_CERT_HEADER, forwardedClientCertThumbprint } from '../domain/forwarded-client-cert.ts';
import { GATE_CONTRACT_PATHS, GATE_PATH, gateContractOf, readOriginalRequest, type GateContract, type OriginalRequest } from '../domain/gate-request.ts';
import { isAddressAllowed, type Network } from '../domain/networks.ts';
import type { Logger } from '../platform/logger.ts';
import type { Metrics } from '../platform/metrics.ts';
import type { GateDecision, PresentedCredentials } from '../services/gate.ts';
import { clientAddress, type Lane } from './koa-app.ts';
import { requestRecorder, routeOf } from './metrics.ts';
import { writeAnswer as write, type Answer } from './early-answer.ts';
import { requestIdOf, serverErrorBody } from './middleware.ts';

export interface GateEndpointDeps {
  /** GATE_TRUSTED_GATEWAYS: empty, the endpoint refuses everyone. */
  trustedGateways: readonly Network[];
  decide(original: OriginalRequest, presented: PresentedCredentials): Promise<GateDecision>;
  /** x5t#S256 of the client certificate of the request, as forwarded by a trusted proxy. */
  certificateThumbprint(req: IncomingMessage): string | undefined;
  /**
   * GATE_ENVOY_CLIENT_CERT: the proxies (TLS_CLIENT_CERT_PROXIES) whose x-forwarded-client-cert
   * the ext-authz contract reads instead of certificateThumbprint. Undefined: off.
   */
  envoyCertificateProxies?: readonly Network[];
  /** The public listener's: for the access log's address (as Koa's ctx.ip) and the metrics' route. */
  trustProxy: boolean;
  issuerPath: string;
  /** Shutting down: each answer lets its connection go. */
  draining(): boolean;
  metrics: Metrics;
  logger: Logger;
}

/** One header of the request as Node gives it (lower-case name), or undefined when absent or empty. */
function headerOf(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * Whether the TCP peer of a connection is in `networks`: parsed once per connection, whose peer
 * never changes, rather than once per request (a gateway keeps its connections open).
 */
function peerIn(known: WeakMap<object, boolean>, req: IncomingMessage, networks: readonly Network[]): boolean {
  let allowed = known.get(req.socket);
  if (allowed === undefined) {
    allowed = networks.length > 0 && isAddressAllowed(req.socket.remoteAddress, networks);
    known.set(req.socket, allowed);
  }
  return allowed;
}

function refusal(status: number, error: string, description: string): Answer {
  return { status, headers: { 'Cache-Control': 'no-store' }, body: { error, error_description: description } };
}

export function gateEndpoint(deps: GateEndpointDeps): Lane {
  const { metrics, logger } = deps;
  const record = requestRecorder(metrics, logger, deps.issuerPath);
  let warnedUntrusted = false;
  let warnedUnreadable = false;
  const gateways = new WeakMap<object, boolean>();
  const certificateProxies = new WeakMap<object, boolean>();

  /** The certificate Envoy describes, believed from a certificate proxy only (as TLS_CLIENT_CERT_HEADER is). */
  const envoyThumbprint = (req: IncomingMessage, proxies: readonly Network[]): string | undefined => {
    // Node joins repeated x-forwarded-client-cert headers with ", ": several elements, refused.
    const value = headerOf(req.headers, FORWARDED_CLIENT_CERT_HEADER);
    if (value === undefined || !peerIn(certificateProxies, req, proxies)) return undefined;
    const thumbprint = forwardedClientCertThumbprint(value);
    if (thumbprint === undefined && !warnedUnreadable) {
      warnedUnreadable = true;
      logger.warn('x-forwarded-client-cert could not be read (one element, as Envoy sets it with forward_client_cert_details: SANITIZE_SET): certificate-bound tokens are refused');
    }
    return thumbprint;
  };

  /** The answer to a decision request, and the labels it is counted under. */
  const answerTo = async (req: IncomingMessage, contract: GateContract, target: string): Promise<Answer & { route: string; outcome: string }> => {
    // The TCP peer: a forwarded address is the caller's word.
    if (!peerIn(gateways, req, deps.trustedGateways)) {
      if (!warnedUntrusted) {
        warnedUntrusted = true;
        logger.warn({ address: req.socket.remoteAddress }, 'decision request from an address outside GATE_TRUSTED_GATEWAYS refused');
      }
      return { ...refusal(403, 'access_denied', 'this address is not a trusted gateway (GATE_TRUSTED_GATEWAYS)'), route: 'none', outcome: 'refused' };
    }
    const { headers } = req;
    const rest = contract === 'ext-authz' ? target.slice(GATE_CONTRACT_PATHS['ext-authz'].length) : '';
    const original = readOriginalRequest(contract, req.method ?? '', (name) => headerOf(headers, name), rest);
    if ('error' in original) {
      // A gateway that sends too little is misconfigured (400, its log says so); a path that
      // cannot be matched safely is the client's doing: refused as forbidden, which every
      // gateway passes on (nginx turns anything but 401 and 403 into a 500).
      const answer = original.error === 'bad_gateway_request'
        ? refusal(400, 'invalid_request', original.description)
        : refusal(403, 'access_denied', original.description);
      return { ...answer, route: 'none', outcome: 'refused' };
    }
    const decision = await deps.decide(original, {
      authorization: headerOf(headers, 'authorization'),
      dpop: headers.dpop,
      certificateThumbprint: contract === 'ext-authz' && deps.envoyCertificateProxies
        ? envoyThumbprint(req, deps.envoyCertificateProxies)
        : deps.certificateThumbprint(req),
    });
    return decision;
  };

  const serve = async (req: IncomingMessage, res: ServerResponse, contract: GateContract, target: string, path: string) => {
    const started = process.hrtime.bigint();
    const requestId = requestIdOf(headerOf(req.headers, 'x-request-id'));
    let route = 'none';
    let outcome = 'refused';
    let status = 500;
    try {
      const answer = await answerTo(req, contract, target);
      ({ route, outcome, status } = answer);
      write(res, answer, requestId, deps.draining());
    } catch (error) {
      // As the public app's error boundary: the stack to the log, the request id to the caller.
      logger.error({ err: error, requestId, path }, 'unhandled error');
      route = 'none';
      outcome = 'refused';
      status = 500;
      if (res.headersSent) res.destroy();
      else write(res, { status, headers: { 'Cache-Control': 'no-store' }, body: serverErrorBody(requestId) }, requestId, deps.draining());
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.gateDecisions.inc({ route, outcome });
      metrics.gateDuration.observe({ outcome }, seconds);
      record(routeOf(path, deps.issuerPath), req.method ?? '', status, seconds, () => ({
        requestId, path, address: clientAddress(req, deps.trustProxy), clientId: undefined,
      }));
    }
  };

  return (req, res) => {
    const target = req.url ?? '';
    if (!target.startsWith(`${GATE_PATH}/`)) return false;
    const query = target.indexOf('?');
    const path = query < 0 ? target : target.slice(0, query);
    const found = gateContractOf(path);
    if (!found) return false;
    serve(req, res, found.contract, target, path).catch((error: unknown) => logger.error({ err: error, path }, 'decision request failed'));
    return true;
  };
}
