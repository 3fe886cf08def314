// What a fast path (src/oidc/fast-path-request.ts) is given of a request and what it answers: the
// same whether Koa's chain runs it or the public listener's protocol lane (src/http/protocol-lane.ts)
// does, before Koa.
import type { IncomingMessage } from 'node:http';

export interface FastPathRequest {
  req: IncomingMessage;
  method: string;
  /** Without the query. */
  path: string;
  authorization: string | undefined;
  /** The caller's address, as Koa's ctx.ip gives it (audit records). */
  ip: string;
  state: { requestId?: unknown };
}

/** A fast path's answer: JSON, with `Cache-Control: no-store`. */
export interface FastPathAnswer {
  status: number;
  body: Record<string, unknown>;
  /** The client the request authenticated as (access log, request limits); none for a refusal. */
  clientId: string | undefined;
}

/** Answers a request, or leaves it (undefined) to what comes after it: the provider in the end. */
export type FastPath = (request: FastPathRequest) => Promise<FastPathAnswer | undefined>;
