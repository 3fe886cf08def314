// Fetching a trusted issuer's discovery document or JWK Set: one GET with a deadline and a size
// cap, redirects never followed (a redirect could lead anywhere, a private address included), and
// in production https only and no private, loopback or link-local target, checked on the address
// the connection actually uses (a name that resolves to one is refused, however it is spelled).
import http from 'node:http';
import https from 'node:https';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

export interface KeyFetchSettings {
  /** Whole request, connection to last byte. */
  timeoutMs: number;
  maxBytes: number;
  /** Development: plain http on a loopback host, and any address. */
  allowInsecure: boolean;
  /** Production: connect to private and link-local addresses too (issuers inside the network). */
  allowPrivateAddresses: boolean;
}

export class KeyFetchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyFetchError';
  }
}

export interface FetchedJson {
  body: unknown;
  /** Cache-Control of the answer, if any. */
  cacheControl: string | undefined;
}

/** Only public unicast addresses (RFC 6890 special-purpose ranges refused). */
export function isPublicAddress(address: string): boolean {
  try {
    return ipaddr.process(address).range() === 'unicast';
  } catch {
    return false;
  }
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

function publicOnlyLookup(hostname: string, options: { all?: boolean }, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, '');
    const list = addresses as LookupAddress[];
    const refused = list.find((entry) => !isPublicAddress(entry.address));
    if (refused || list.length === 0) {
      return callback(Object.assign(new Error(`${hostname} resolves to a private or reserved address`), { code: 'EPRIVATE' }), '');
    }
    if (options.all) return callback(null, list);
    return callback(null, list[0]!.address, list[0]!.family);
  });
}

/** GET `url` and parse its JSON body, within the settings' limits. */
export function fetchJson(url: string, settings: KeyFetchSettings): Promise<FetchedJson> {
  const target = URL.parse(url);
  if (!target || (target.protocol !== 'https:' && target.protocol !== 'http:')) return Promise.reject(new KeyFetchError(`${url} is not an http(s) URL`));
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(target.hostname) || target.hostname.startsWith('127.');
  if (target.protocol === 'http:' && !(settings.allowInsecure && loopback)) {
    return Promise.reject(new KeyFetchError(`${url}: keys are fetched over https only`));
  }
  const checkAddresses = !settings.allowInsecure && !settings.allowPrivateAddresses;
  const literal = target.hostname.replace(/^\[|\]$/g, '');
  if (checkAddresses && isIP(literal) && !isPublicAddress(literal)) {
    return Promise.reject(new KeyFetchError(`${url}: private, loopback and link-local addresses are refused`));
  }
  return new Promise((resolve, reject) => {
    const get = target.protocol === 'https:' ? https.get : http.get;
    const request = get(target, {
      signal: AbortSignal.timeout(settings.timeoutMs),
      headers: { accept: 'application/json, application/jwk-set+json' },
      ...(checkAddresses ? { lookup: publicOnlyLookup as never } : {}),
    }, (response) => {
      const status = response.statusCode ?? 0;
      if (status !== 200) {
        response.resume();
        // 3xx included: redirects are not followed.
        return reject(new KeyFetchError(`${target.origin}${target.pathname} answered ${status}`));
      }
      const declared = Number(response.headers['content-length']);
      if (declared > settings.maxBytes) {
        response.destroy();
        return reject(new KeyFetchError(`${target.origin}${target.pathname} is larger than ${settings.maxBytes} bytes`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > settings.maxBytes) {
          response.destroy();
          reject(new KeyFetchError(`${target.origin}${target.pathname} is larger than ${settings.maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('error', (error) => reject(new KeyFetchError(`${target.origin}${target.pathname}: ${error.message}`)));
      response.on('end', () => {
        if (size > settings.maxBytes) return;
        try {
          resolve({ body: JSON.parse(Buffer.concat(chunks, size).toString('utf8')), cacheControl: response.headers['cache-control'] });
        } catch {
          reject(new KeyFetchError(`${target.origin}${target.pathname} did not answer JSON`));
        }
      });
    });
    request.on('error', (error) => {
      const reason = error.name === 'AbortError' || error.name === 'TimeoutError' ? `no answer within ${settings.timeoutMs} ms` : error.message;
      reject(new KeyFetchError(`${target.origin}${target.pathname}: ${reason}`));
    });
  });
}

/** max-age of a Cache-Control header, in seconds; undefined without one (no-store, no-cache: 0). */
export function maxAgeOf(cacheControl: string | undefined): number | undefined {
  if (!cacheControl) return undefined;
  const directives = cacheControl.toLowerCase().split(',').map((part) => part.trim());
  if (directives.some((d) => d === 'no-store' || d === 'no-cache')) return 0;
  const maxAge = directives.find((d) => d.startsWith('max-age='));
  const seconds = maxAge ? Number(maxAge.slice('max-age='.length)) : Number.NaN;
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}
