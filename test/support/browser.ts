// A minimal browser over fetch for sign-in flows: a cookie jar, manual redirects, and helpers to
// read forms out of our pages. Real HTTP against a real server; Chromium tests live apart.
import { createHash, randomBytes } from 'node:crypto';

export interface Page { status: number; url: string; headers: Headers; html: string; location?: string }

export class HttpBrowser {
  cookies = new Map<string, string>();
  /** The source address to claim in X-Forwarded-For (servers that trust a proxy). */
  forwardedFor?: string;

  #store(headers: Headers): void {
    for (const line of headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const index = pair!.indexOf('=');
      const name = pair!.slice(0, index).trim();
      const value = pair!.slice(index + 1).trim();
      const expired = attributes.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a) || /^\s*max-age=0/i.test(a));
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Page> {
    const headers: Record<string, string> = { ...init.headers };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (this.forwardedFor) headers['x-forwarded-for'] = this.forwardedFor;
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const response = await fetch(url, { method: init.method ?? (body !== undefined ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    this.#store(response.headers);
    const location = response.headers.get('location') ?? undefined;
    return {
      status: response.status,
      url,
      headers: response.headers,
      html: await response.text(),
      location: location ? new URL(location, url).href : undefined,
    };
  }

  /** Follows redirects until a page that is not one, or one leaving for `stopAt`. */
  async follow(page: Page, stopAt?: string): Promise<Page> {
    let current = page;
    for (let hops = 0; current.location && hops < 10; hops++) {
      if (stopAt && current.location.startsWith(stopAt)) return current;
      current = await this.request(current.location);
    }
    return current;
  }

  async get(url: string, stopAt?: string): Promise<Page> {
    return this.follow(await this.request(url), stopAt);
  }

  async submit(page: Page, form: Record<string, string>, options: { action?: string; stopAt?: string } = {}): Promise<Page> {
    const action = options.action ?? formAction(page);
    const csrf = hiddenValue(page, 'csrf');
    const response = await this.request(new URL(action, page.url).href, { form: { ...(csrf ? { csrf } : {}), ...form } });
    return this.follow(response, options.stopAt);
  }
}

export function formAction(page: Page, index = 0): string {
  const actions = [...page.html.matchAll(/<form[^>]*action="([^"]+)"/g)].map((m) => m[1]!.replaceAll('&amp;', '&'));
  if (!actions[index]) throw new Error(`no form #${index} on the page (status ${page.status}):\n${page.html.slice(0, 500)}`);
  return actions[index];
}

export function hiddenValue(page: Page, name: string): string | undefined {
  return new RegExp(`name="${name}" value="([^"]*)"`).exec(page.html)?.[1];
}

export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export function authorizeUrl(issuer: string, params: Record<string, string>): string {
  const url = new URL(`${issuer}/auth`);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  return url.href;
}
