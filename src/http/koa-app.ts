// The one way to make the Koa app of a Postern listener, so that the public listener and the
// admin listener (ADMIN_PORT) cannot come to disagree about whom they trust.
import Koa from 'koa';

export function createKoaApp(options: { trustProxy: boolean; keys?: string[] }): Koa {
  // Behind a proxy, the client's address is the last X-Forwarded-For entry, the one the proxy
  // appended: earlier entries are whatever the caller sent. Login throttling, network allow-lists
  // and the audit log's source addresses all go by it.
  const koa = new Koa({ proxy: options.trustProxy, maxIpsCount: 1, keys: options.keys });
  // Errors are answered and logged by our own middleware, never printed by Koa.
  koa.silent = true;
  return koa;
}
