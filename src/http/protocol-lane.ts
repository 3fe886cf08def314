// The plain token and introspection requests, answered before Koa on the public listener's lane
// (http/koa-app.ts), as the decision endpoint is (http/gate.ts): for these, Koa's context,
// middleware chain and response cost more than the fast paths' own work. The fast paths are the
// provider's (src/oidc/fast-path-request.ts), the same functions that answer in Koa's chain when
// this lane leaves a request there.
//
// A request is taken only when nothing in front of the provider would have answered it: a POST
// to the token or introspection endpoint, spelled exactly and without a query, a form body with
// a declared length within the body limit, and clean input (the request guard's own checks).
// Then what the middleware does for such a request is done here with the same functions, in the
// same order: the request limits (counted once: a request handed on to Koa is settled there,
// never counted again), the x-request-id, Pragma: no-cache with no-store, Connection: close while
// draining, the request metrics, protocol counters and access-log line, and a 500 with the
// request id for anything unexpected. A request no fast path answers goes on to Koa untouched:
// its body is still on the stream.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { findOverlongParameter } from '../domain/parameter-limits.ts';
import type { FastPath } from '../platform/fast-path.ts';
import type { Logger } from '../platform/logger.ts';
import type { Metrics } from '../platform/metrics.ts';
import { isPlainForm, peekRequestBody } from '../platform/peek-body.ts';
import { writeAnswer, type Answer } from './early-answer.ts';
import { clientAddress, type Lane } from './koa-app.ts';
import { countProtocolOutcome, requestRecorder, routeOf } from './metrics.ts';
import { requestIdOf, serverErrorBody } from './middleware.ts';
import { tooManyRequestsAnswer, type RequestLimits } from './rate-limit.ts';
import { findUncleanForm, findUncleanHeader, type Params } from './request-guard.ts';

export interface ProtocolLaneDeps {
  /** The full paths it takes, spelled exactly (the token and introspection endpoints). */
  paths: readonly string[];
  maxBodyBytes: number;
  /** TLS_CLIENT_CERT_HEADER, checked as the request guard checks it. */
  certificateHeader?: string;
  /** The public listener's: the caller's address as Koa's ctx.ip gives it. */
  trustProxy: boolean;
  issuerPath: string;
  limits: Pick<RequestLimits, 'admit' | 'settle' | 'handOver'>;
  /** The current provider's fast paths: an answer, or undefined to leave the request to Koa. */
  answer: FastPath;
  /** Shutting down: each answer lets its connection go. */
  draining(): boolean;
  metrics: Metrics;
  logger: Logger;
}

export function protocolLane(deps: ProtocolLaneDeps): Lane {
  const { metrics, logger, maxBodyBytes } = deps;
  const paths = new Set(deps.paths);
  const record = requestRecorder(metrics, logger, deps.issuerPath);

  const serve = async (req: IncomingMessage, res: ServerResponse, pass: () => void, path: string) => {
    const started = process.hrtime.bigint();
    const header = (name: string) => (req.headers[name] as string | undefined) ?? '';
    let requestId: string | undefined;
    let answer: (Answer & { clientId: string | undefined }) | undefined;
    let address = '';
    try {
      const body = await peekRequestBody(req, maxBodyBytes);
      const params: Params = [];
      if (!(body instanceof Buffer) || !body.length || findUncleanForm(body, params) !== undefined || findOverlongParameter(params)) {
        pass();
        return;
      }
      requestId = requestIdOf(header('x-request-id') || undefined);
      address = clientAddress(req, deps.trustProxy);
      const admitted = await deps.limits.admit('POST', path, req, address);
      if (admitted && 'refused' in admitted) {
        answer = { ...tooManyRequestsAnswer(admitted.refused), clientId: undefined };
      } else {
        const early = await deps.answer({
          req, method: 'POST', path, authorization: header('authorization') || undefined, ip: address, state: { requestId },
        });
        if (!early) {
          deps.limits.handOver(req, admitted?.admission);
          pass();
          return;
        }
        if (admitted?.admission) await deps.limits.settle(admitted.admission, { status: early.status, body: early.body, authenticatedAs: early.clientId });
        // The body stays on the stream unread; nothing else will read it.
        req.resume();
        answer = { status: early.status, headers: { 'Cache-Control': 'no-store' }, body: early.body, clientId: early.clientId };
      }
      writeAnswer(res, answer, requestId, deps.draining());
    } catch (error) {
      // As the public app's error boundary: the stack to the log, the request id to the caller.
      requestId ??= requestIdOf(header('x-request-id') || undefined);
      logger.error({ err: error, requestId, path }, 'unhandled error');
      answer = { status: 500, headers: { 'Cache-Control': 'no-store' }, body: serverErrorBody(requestId), clientId: undefined };
      if (res.headersSent) res.destroy();
      else writeAnswer(res, answer, requestId, deps.draining());
    } finally {
      if (answer) {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const route = routeOf(path, deps.issuerPath);
        const { status, body, clientId } = answer;
        const id = requestId!;
        record(route, 'POST', status, seconds, () => ({ requestId: id, path, address: address || clientAddress(req, deps.trustProxy), clientId }));
        countProtocolOutcome(metrics, route, 'POST', status, body);
      }
    }
  };

  return (req, res, pass) => {
    const path = req.url ?? '';
    if (req.method !== 'POST' || !paths.has(path) || !isPlainForm(req)) return false;
    // A declared length within the limit: anything else is the body limit's or the request guard's.
    const declared = req.headers['content-length'];
    const length = Number(declared);
    if (declared === undefined || req.headers['transfer-encoding'] !== undefined || !(length > 0 && length <= maxBodyBytes)) return false;
    const header = (name: string) => (req.headers[name] as string | undefined) ?? '';
    if (findUncleanHeader(header, deps.certificateHeader) !== undefined) return false;
    serve(req, res, pass, path).catch((error: unknown) => logger.error({ err: error, path }, 'protocol request failed'));
    return true;
  };
}
