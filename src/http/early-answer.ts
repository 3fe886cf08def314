// What a request answered before Koa (http/koa-app.ts Lane: the decision endpoint, the protocol
// lane) is sent back with: the headers the public app's middleware would have set, the same bytes.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { isNoStore } from './middleware.ts';

/** An answer: a status, headers, and a JSON body (none for the decision endpoint's allow). */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown> | undefined;
}

/** Writes an answer as the public app's middleware would have: the same headers, the same bytes. */
export function writeAnswer(res: ServerResponse, answer: Answer, requestId: string, draining: boolean): void {
  const text = answer.body ? JSON.stringify(answer.body) : '';
  const headers: OutgoingHttpHeaders = { 'x-request-id': requestId, ...answer.headers };
  // An allow is exactly 200 with no body: Envoy allows on 200 only, nginx and Caddy ignore it.
  headers['Content-Type'] = answer.body ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8';
  headers['Content-Length'] = String(Buffer.byteLength(text));
  if (isNoStore(answer.headers['Cache-Control'] ?? '')) headers.Pragma = 'no-cache';
  if (draining) headers.Connection = 'close';
  res.writeHead(answer.status, headers);
  res.end(text);
}
