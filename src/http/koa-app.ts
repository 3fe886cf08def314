// The one way to make the Koa app of a Postern listener, so that the public listener and the
// admin listener (ADMIN_PORT) cannot come to disagree about whom they trust.
import type { IncomingMessage, ServerResponse } from 'node:http';
import Koa from 'koa';

/**
 * Takes the requests it answers before Koa sees them (true), or leaves them to Koa (false). A
 * request it took may still be handed to Koa later, once, with `pass`, as long as nothing of the
 * request was consumed and nothing of the response written.
 */
export type Lane = (req: IncomingMessage, res: ServerResponse, pass: () => void) => boolean;

/** Several lanes, each asked in turn. */
export function lanes(...all: (Lane | undefined)[]): Lane | undefined {
  const present = all.filter((lane): lane is Lane => lane !== undefined);
  if (present.length <= 1) return present[0];
  return (req, res, pass) => present.some((lane) => lane(req, res, pass));
}

export function createKoaApp(options: { trustProxy: boolean; keys?: string[]; lane?: Lane }): Koa {
  // Behind a proxy, the client's address is the last X-Forwarded-For entry, the one the proxy
  // appended: earlier entries are whatever the caller sent. Login throttling, network allow-lists
  // and the audit log's source addresses all go by it.
  const koa = new Koa({ proxy: options.trustProxy, maxIpsCount: 1, keys: options.keys });
  // Errors are answered and logged by our own middleware, never printed by Koa.
  koa.silent = true;
  const { lane } = options;
  if (lane) {
    // Whoever serves this app serves the lane too: it is part of what callback() returns.
    const callback = koa.callback.bind(koa);
    koa.callback = () => {
      const handle = callback();
      return (req, res) => (lane(req as IncomingMessage, res as ServerResponse, () => void handle(req, res)) ? ANSWERED : handle(req, res));
    };
  }
  return koa;
}

const ANSWERED = Promise.resolve();

/**
 * The client's address as ctx.ip gives it in an app made here, for a request answered before Koa:
 * with trustProxy, the last X-Forwarded-For entry (maxIpsCount 1), else the TCP peer.
 */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  const forwarded = trustProxy ? req.headers['x-forwarded-for'] : undefined;
  const last = typeof forwarded === 'string' && forwarded ? forwarded.split(',').at(-1)!.trim() : '';
  return last || req.socket.remoteAddress || '';
}
