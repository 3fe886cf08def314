// Reading a small request body before the code that owns it (oidc-provider) reads it: for the
// checks of every request's input, the introspection fast path and rate limits keyed by
// client_id. The body is put back on the stream; a second peek of the same request gets the same
// bytes (a paused stream would not deliver them twice).
import type { IncomingMessage } from 'node:http';

/** A body sent without a declared length was longer than allowed; what was read is gone. */
export const TOO_LARGE = Symbol('too large');

type Peeked = Buffer | undefined | typeof TOO_LARGE;

const peeked = new WeakMap<IncomingMessage, Promise<Peeked>>();

/**
 * Reads the body (`length` bytes when declared, else until the message is complete, at most
 * `limit`) and puts it back at the front of the stream, so that a later reader gets it whole,
 * whichever way it reads. Read in paused mode ('readable'): once the listener is gone the stream
 * is neither flowing nor explicitly paused, so a reader that listens for 'data' starts it, and one
 * that iterates reads it. Putting the bytes back in the same turn as the last read keeps the
 * stream from ending (Node checks for "one last unshift" before it emits 'end').
 */
function readAndPutBack(req: IncomingMessage, length: number | undefined, limit: number): Promise<Peeked> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (result: Peeked) => {
      req.off('readable', onReadable);
      req.off('end', onEnd);
      req.off('error', onEnd);
      if (result instanceof Buffer && result.length) req.unshift(result);
      resolve(result);
    };
    const onReadable = () => {
      for (let chunk = req.read() as Buffer | null; chunk !== null; chunk = req.read() as Buffer | null) {
        chunks.push(chunk);
        size += chunk.length;
        if (size > limit) return finish(TOO_LARGE);
        // A stream that delivers more than it declared is broken: nothing is put back.
        if (length !== undefined && size >= length) return finish(size === length ? Buffer.concat(chunks, size) : undefined);
      }
      if (req.complete) finish(length === undefined || size === length ? Buffer.concat(chunks, size) : undefined);
      return undefined;
    };
    // It ended short (or empty): a broken stream, or nothing to put back.
    const onEnd = () => finish(size === 0 && !length ? Buffer.alloc(0) : undefined);
    req.on('readable', onReadable);
    req.once('end', onEnd);
    req.once('error', onEnd);
  });
}

/** The body of `req` (declared `length` bytes), left on the stream for its owner. */
export function peekBody(req: IncomingMessage, length: number): Promise<Buffer | undefined> {
  let body = peeked.get(req);
  if (!body) {
    body = readAndPutBack(req, length, length);
    peeked.set(req, body);
  }
  return body as Promise<Buffer | undefined>;
}

/** The body of `req` sent without Content-Length (chunked), left on the stream; TOO_LARGE past `limit`. */
export function peekUnsizedBody(req: IncomingMessage, limit: number): Promise<Peeked> {
  let body = peeked.get(req);
  if (!body) {
    body = readAndPutBack(req, undefined, limit);
    peeked.set(req, body);
  }
  return body;
}

/**
 * The body of `req` however it is framed, left on the stream for its owner: `Content-Length`
 * bytes when declared (undefined past `limit`: the body limit refuses those), else, when it comes
 * chunked, until it ends (TOO_LARGE past `limit`). undefined when there is none. Every check that
 * reads a body goes through here, so none of them can be skipped by leaving the length out.
 */
export function peekRequestBody(req: IncomingMessage, limit: number): Promise<Peeked> {
  const declared = req.headers['content-length'];
  if (declared !== undefined) {
    const length = Number(declared);
    return length > 0 && length <= limit ? peekBody(req, length) : Promise.resolve(undefined);
  }
  return req.headers['transfer-encoding'] ? peekUnsizedBody(req, limit) : Promise.resolve(undefined);
}

/**
 * A url-encoded form's media type as clients send it: a subset of what Koa's ctx.is (and so the
 * provider's body parser) takes, so that whatever passes here would also pass there.
 */
const PLAIN_FORM_TYPE = /^application\/x-www-form-urlencoded(?:;\s*charset=(?:utf-8|"utf-8"))?$/i;

/** Whether a request is a url-encoded form, plainly labelled (see PLAIN_FORM_TYPE). */
export function isPlainForm(req: IncomingMessage): boolean {
  const type = req.headers['content-type'];
  return type !== undefined && PLAIN_FORM_TYPE.test(type);
}

/** The parameters of each request's form, parsed once from the bytes peeked (a replaced body is parsed again). */
const forms = new WeakMap<IncomingMessage, { body: Buffer; params: URLSearchParams }>();

/**
 * The parameters of a form body (`application/x-www-form-urlencoded`), however it is framed.
 * Parsed once per request and shared by every reader before the body's owner (request limits,
 * federated client authentication, the fast paths): read them, never change them (copy first).
 */
export async function peekFormParams(req: IncomingMessage, limit: number): Promise<URLSearchParams | undefined> {
  const type = req.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') return undefined;
  const body = await peekRequestBody(req, limit);
  if (!(body instanceof Buffer) || !body.length) return undefined;
  const known = forms.get(req);
  if (known?.body === body) return known.params;
  const params = new URLSearchParams(body.toString('utf8'));
  forms.set(req, { body, params });
  return params;
}

/**
 * Replaces a peeked body (declared length) by `body` before its owner reads it: the old bytes
 * are taken off the stream and the new ones put back in the same turn (so the stream does not
 * end between the two), and later peeks see the new bytes. False when the old bytes were not
 * all there to take (nothing is changed then).
 */
export async function replacePeekedBody(req: IncomingMessage, body: Buffer): Promise<boolean> {
  const old = await peeked.get(req);
  if (!(old instanceof Buffer) || req.readableLength !== old.length) return false;
  const taken = req.read() as Buffer | null;
  if (!taken || !taken.equals(old)) {
    if (taken) req.unshift(taken);
    return false;
  }
  req.unshift(body);
  req.headers['content-length'] = String(body.length);
  peeked.set(req, Promise.resolve(body));
  return true;
}
