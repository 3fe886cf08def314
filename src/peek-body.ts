// Reading a small request body before the code that owns it (oidc-provider) reads it: for the
// introspection fast path and for rate limits keyed by client_id. The body is put back on the
// stream; a second peek of the same request gets the same bytes (a paused stream would not
// deliver them twice).
import type { IncomingMessage } from 'node:http';

const peeked = new WeakMap<IncomingMessage, Promise<Buffer | undefined>>();

/**
 * Reads a body of known length and puts it back at the front of the stream, so that a later
 * reader (the provider) gets it whole. Resolves undefined if the stream does not deliver it.
 */
function readAndPutBack(req: IncomingMessage, length: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (complete: boolean) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onEnd);
      req.pause();
      const all = Buffer.concat(chunks, size);
      // Putting data back is possible only before 'end' has been emitted, which is the case when
      // the whole declared body arrived; a stream that ended short is broken anyway.
      if (complete) req.unshift(all);
      resolve(complete ? all : undefined);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= length) finish(size === length);
    };
    const onEnd = () => finish(false);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onEnd);
  });
}

/** The body of `req` (declared `length` bytes), left on the stream for its owner. */
export function peekBody(req: IncomingMessage, length: number): Promise<Buffer | undefined> {
  let body = peeked.get(req);
  if (!body) {
    body = readAndPutBack(req, length);
    peeked.set(req, body);
  }
  return body;
}
