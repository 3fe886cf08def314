// Follows signing-key rotations without a restart. oidc-provider fixes its keystore when it is
// constructed, so a changed key set means a new Provider: this holder builds one and swaps it in.
// Everything that uses the provider (the mounted routes, the fast paths, admin token checks,
// interaction routes) goes through current(); a request in flight finishes on the provider it
// started on. Sessions, grants and interactions live in the database, so a swap loses nothing.
//
// When to look again: at once when another process announces new keys on the change feed, at the
// moment the set changes by time alone (a key activates, retires or leaves the JWKS), and every
// few seconds anyway (the embedded store has no feed; a feed may drop notifications).
import type Koa from 'koa';
import compose from 'koa-compose';
import mount from 'koa-mount';
import { isProviderPath } from '../domain/endpoints.ts';
import type { ChangeSource } from '../propagation/index.ts';
import type { KeySet } from '../domain/signing-keys.ts';
import { describeKeySet } from './jwks.ts';
import type { ProviderParts } from './provider.ts';

export interface ProviderHolderOptions {
  build(keys: KeySet): ProviderParts;
  /** The published key set at `now` (epoch ms). */
  load(now: number): Promise<KeySet>;
  /** Where the provider is mounted: the issuer's path ('' at the root). */
  prefix: string;
  changes: ChangeSource | null;
  /** The clock (tests may move it). */
  now?: () => number;
  /** Told of every new provider, with the key set it was built from. */
  onSwap?(keys: KeySet, previous: KeySet): void;
  onError(error: unknown): void;
}

/** A look at the database at least this often: with a live feed, and without one. */
const RECHECK_LIVE_MS = 30_000;
const RECHECK_BLIND_MS = 5_000;
/** Past a transition, so that the look finds it done whatever the timer's rounding. */
const TRANSITION_SLACK_MS = 50;

export interface CurrentProvider extends ProviderParts {
  keys: KeySet;
  /** The fast paths and the mounted provider, as one middleware. */
  middleware: Koa.Middleware;
}

export class ProviderHolder {
  #options: ProviderHolderOptions;
  #now: () => number;
  #current: CurrentProvider;
  #described: string;
  #running: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #closed = false;

  private constructor(options: ProviderHolderOptions, keys: KeySet) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#current = this.#build(keys);
    this.#described = describeKeySet(keys);
  }

  /** Loads the key set, builds the first provider and starts following changes. */
  static async create(options: ProviderHolderOptions): Promise<ProviderHolder> {
    const holder = new ProviderHolder(options, await options.load((options.now ?? Date.now)()));
    holder.#unsubscribe = options.changes?.subscribe({
      onChange: (change) => {
        if (change.kind === 'keys') void holder.refresh();
      },
      // (Re)connected or dropped: a notification may have been missed.
      onReset: () => void holder.refresh(),
    });
    holder.#schedule();
    return holder;
  }

  current(): CurrentProvider {
    return this.#current;
  }

  #build(keys: KeySet): CurrentProvider {
    const parts = this.#options.build(keys);
    const { prefix } = this.#options;
    const provider = parts.provider as unknown as Koa;
    const mounted = prefix ? mount(prefix, provider) : mount(provider);
    const serve = compose([...parts.fastPaths, mounted]);
    // oidc-provider would also answer `/TOKEN` or `/token/`, which request limits and the fast
    // paths would not recognise: it only sees the paths it serves, spelled exactly
    // (src/domain/endpoints.ts); any other goes on, to the 404 at the end.
    const middleware: Koa.Middleware = (ctx, next) => (isProviderPath(ctx.path, prefix) ? serve(ctx, next) : next());
    return { ...parts, keys, middleware };
  }

  /**
   * Reloads the key set and swaps in a new provider if it changed. Concurrent calls share one
   * reload, plus one more if a call came in meanwhile (it may have been for a newer change).
   */
  refresh(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#refreshOnce();
      } while (this.#again && !this.#closed);
    })().finally(() => {
      this.#running = undefined;
      this.#schedule();
    });
    return this.#running;
  }

  async #refreshOnce(): Promise<void> {
    try {
      const keys = await this.#options.load(this.#now());
      const described = describeKeySet(keys);
      if (described === this.#described) {
        this.#current.keys.changesAt = keys.changesAt;
        return;
      }
      const previous = this.#current.keys;
      this.#current = this.#build(keys);
      this.#described = described;
      this.#options.onSwap?.(keys, previous);
    } catch (error) {
      // Keep serving with the keys we have; the next look tries again.
      this.#options.onError(error);
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    if (this.#timer) clearTimeout(this.#timer);
    let wait = this.#options.changes?.live ? RECHECK_LIVE_MS : RECHECK_BLIND_MS;
    const { changesAt } = this.#current.keys;
    if (changesAt !== undefined) wait = Math.min(wait, Math.max(0, changesAt - this.#now()) + TRANSITION_SLACK_MS);
    this.#timer = setTimeout(() => void this.refresh(), wait);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe?.();
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
  }
}
