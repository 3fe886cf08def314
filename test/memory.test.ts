// What unauthenticated requests leave behind in memory. Every cache, counter and log buffer keyed
// by a caller's string must hold nothing of the request it came from, and lookups that find
// nothing must not be remembered: thousands of requests naming made-up clients and APIs, each
// carrying 12 KB, must leave the heap (after full garbage collections) where it was.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onPostgres } from './support/database.ts';
import { ROOT } from './support/process.ts';

type Message = { ready?: true; url?: string; client?: { id: string; secret: string }; resource?: string; id?: number; heapUsed?: number };

let child: ChildProcess;
let url: string;
let client: { id: string; secret: string };
let nextId = 0;

function ask(kind: 'heap' | 'stop'): Promise<Message> {
  const id = ++nextId;
  return new Promise((resolve) => {
    const listener = (message: Message) => {
      if (message.id !== id) return;
      child.off('message', listener);
      resolve(message);
    };
    child.on('message', listener);
    child.send({ id, kind });
  });
}

beforeAll(async () => {
  child = fork(path.join(ROOT, 'test/support/heap-server.ts'), {
    execArgv: ['--expose-gc', '--disable-warning=ExperimentalWarning'],
    env: { ...process.env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ready = await new Promise<Message>((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`the server process exited with ${code}`)));
  });
  ({ url, client } = ready as Required<Message>);
});

afterAll(async () => {
  if (child?.connected) await ask('stop');
  if (child && child.exitCode === null) child.kill();
});

const padding = 'x'.repeat(12_000);
const unknownId = () => randomBytes(16).toString('base64url').replace(/^[-_]/, 'a');
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/** Each kind of request, with something new in it every time (a new key for any cache). */
const requests: Record<string, () => Promise<Response>> = {
  // An unknown client of the right shape, with 12 KB in the same URL.
  authorizeUnknownClient: () => fetch(`${url}/auth?client_id=${unknownId()}&response_type=code&scope=openid&x=${padding}`, { redirect: 'manual' }),
  // A client id of 12 KB.
  authorizeLongClientId: () => fetch(`${url}/auth?client_id=${unknownId()}${padding}&response_type=code&scope=openid`, { redirect: 'manual' }),
  // An unknown client at the token endpoint, in the body and in Basic credentials.
  tokenUnknownClient: () => fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `grant_type=client_credentials&client_id=${unknownId()}&client_secret=wrong&x=${padding}`,
  }),
  tokenLongBasicId: () => fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(`${unknownId()}${padding}`, 'wrong') },
    body: 'grant_type=client_credentials',
  }),
  // A real client naming APIs that do not exist: just under the resource limit, and far over it.
  tokenUnknownResource: () => fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(client.id, client.secret) },
    body: `grant_type=client_credentials&resource=${encodeURIComponent(`https://${unknownId()}.internal/${'r'.repeat(1900)}`)}&x=${padding}`,
  }),
  tokenLongResource: () => fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(client.id, client.secret) },
    body: `grant_type=client_credentials&resource=${encodeURIComponent(`https://${unknownId()}.internal/${padding}`)}`,
  }),
};

const statuses = new Map<string, Set<number>>();

async function fire(rounds: number): Promise<void> {
  const kinds = Object.entries(requests);
  const concurrency = 16;
  let next = 0;
  const total = rounds * kinds.length;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const [kind, send] = kinds[next++ % kinds.length]!;
      const res = await send();
      await res.arrayBuffer();
      if (!statuses.has(kind)) statuses.set(kind, new Set());
      statuses.get(kind)!.add(res.status);
    }
  }));
}

describe('requests naming made-up clients and APIs', () => {
  it('leave the heap flat after thousands of them, each answered as before', async () => {
    // Warm up (code paths compiled, pools filled), then measure.
    await fire(20);
    const before = (await ask('heap')).heapUsed!;
    const started = Date.now();
    // The embedded database answers one query at a time: fewer rounds keep the test short there.
    const rounds = onPostgres ? 340 : 80;
    await fire(rounds);
    const after = (await ask('heap')).heapUsed!;
    const growth = (after - before) / 1024 / 1024;
    console.log(`heap after ${rounds * Object.keys(requests).length} requests: ${growth.toFixed(1)} MiB more, in ${Date.now() - started} ms`);
    // Each request carried about 12 KB: keeping one of them per request would be 40 MiB and more.
    expect(growth).toBeLessThan(4);

    // The answers stay the usual ones: an error page for /auth, invalid_client, invalid_target.
    expect(Object.fromEntries([...statuses].map(([kind, set]) => [kind, [...set].sort()]))).toEqual({
      authorizeUnknownClient: [400],
      authorizeLongClientId: [400],
      tokenUnknownClient: [401],
      tokenLongBasicId: [401],
      tokenUnknownResource: [400],
      tokenLongResource: [400],
    });
  }, 60_000);
});
