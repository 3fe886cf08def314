// The Koa app of a Postern listener, and what is answered before Koa (the decision endpoint):
// the client's address the access log names must be Koa's ctx.ip, whatever X-Forwarded-For holds.
import http from 'node:http';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { clientAddress, createKoaApp } from '../src/http/koa-app.ts';

describe('clientAddress', () => {
  it('is what ctx.ip gives, with and without TRUST_PROXY', () => {
    for (const trustProxy of [true, false]) {
      const koa = createKoaApp({ trustProxy });
      for (const forwarded of [undefined, '', '203.0.113.9', '203.0.113.9, 198.51.100.7', '203.0.113.9,198.51.100.7 ', '203.0.113.9, ', ' , ']) {
        const socket = new net.Socket();
        Object.defineProperty(socket, 'remoteAddress', { value: '127.0.0.1' });
        const req = new http.IncomingMessage(socket);
        req.headers = forwarded === undefined ? {} : { 'x-forwarded-for': forwarded };
        const ctx = koa.createContext(req, new http.ServerResponse(req));
        expect(clientAddress(req, trustProxy), `${trustProxy} ${forwarded}`).toBe(ctx.ip);
      }
    }
  });
});
