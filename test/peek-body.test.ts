// Reading a request's body before its owner does (src/platform/peek-body.ts), over real HTTP: the
// owner still reads every byte, a form is parsed once for all who peek at it, and a replaced
// body is what later readers, parsed form included, see.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peekFormParams, replacePeekedBody } from '../src/platform/peek-body.ts';

type Handler = (req: http.IncomingMessage) => Promise<unknown>;
let handler: Handler;
let server: http.Server;
let url: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    handler(req).then(async (result) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ result, owner: Buffer.concat(chunks).toString('utf8') }));
    }, (error: unknown) => {
      res.statusCode = 500;
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function send(body: string | ReadableStream<Uint8Array>, type = 'application/x-www-form-urlencoded') {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': type }, body, duplex: 'half' } as RequestInit);
  return response.json() as Promise<{ result: unknown; owner: string }>;
}

describe('peeking at a form', () => {
  it('parses it once for every reader and leaves every byte to the owner', async () => {
    handler = async (req) => {
      const first = await peekFormParams(req, 1000);
      const second = await peekFormParams(req, 1000);
      return { same: first === second, grant: first?.get('grant_type'), scope: first?.get('scope') };
    };
    const body = 'grant_type=client_credentials&scope=a%20b';
    expect(await send(body)).toEqual({ result: { same: true, grant: 'client_credentials', scope: 'a b' }, owner: body });
  });

  it('gives later readers, and the owner, the body that replaced it', async () => {
    handler = async (req) => {
      const before = await peekFormParams(req, 1000);
      const rewritten = new URLSearchParams(before);
      rewritten.set('client_secret', 'proof');
      rewritten.delete('client_assertion');
      const replaced = await replacePeekedBody(req, Buffer.from(rewritten.toString()));
      const after = await peekFormParams(req, 1000);
      return { replaced, untouched: before?.get('client_assertion'), after: after?.toString(), fresh: before !== after };
    };
    expect(await send('client_id=svc&client_assertion=xyz')).toEqual({
      result: { replaced: true, untouched: 'xyz', after: 'client_id=svc&client_secret=proof', fresh: true },
      owner: 'client_id=svc&client_secret=proof',
    });
  });

  it('reads a chunked form too, and nothing that is not a form', async () => {
    handler = async (req) => (await peekFormParams(req, 1000))?.get('a') ?? null;
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('a=1&'));
        controller.enqueue(new TextEncoder().encode('b=2'));
        controller.close();
      },
    });
    expect(await send(chunked)).toEqual({ result: '1', owner: 'a=1&b=2' });
    expect(await send('{"a":"1"}', 'application/json')).toEqual({ result: null, owner: '{"a":"1"}' });
  });
});
