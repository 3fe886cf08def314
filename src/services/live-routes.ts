// This process's route table: every route policy, compiled (domain/routes.ts), matched
// synchronously per request by whoever enforces them. Kept current by the change feed: a write
// of a rule publishes `routes` (services/routes.ts), every process reloads, and the writer's
// marker is acknowledged only once the reload is done (propagation/process.ts), so the new rules
// hold everywhere when the write returns. Without a live feed (the embedded store, or Postgres
// notifications lost) the table reloads once a second.
import type { Db } from '../db/tables.ts';
import { RouteTable, type RouteMatch, type RouteRequest, type RouteRule } from '../domain/routes.ts';
import type { Change, ChangeSource } from '../propagation/index.ts';
import { listRouteRules } from '../store/routes.ts';

/** The table could not be loaded: a gateway must refuse (fail closed), not guess. */
export class RoutesUnavailable extends Error {
  constructor() {
    super('route policies are not loaded');
    this.name = 'RoutesUnavailable';
  }
}

const POLL_MS = 1000;
const RETRY_MS = 500;

export class LiveRoutes {
  #db: Db;
  #changes: ChangeSource | null;
  #table: RouteTable | null = null;
  #loading: Promise<void> | undefined;
  #again = false;
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(db: Db, changes: ChangeSource | null) {
    this.#db = db;
    this.#changes = changes;
    this.#unsubscribe = changes?.subscribe({
      onChange: (change: Change) => (change.kind === 'routes' ? this.refresh() : undefined),
      // Changes may have been missed while the feed was down.
      onReset: () => void this.refresh(),
    });
    this.#timer = setInterval(() => {
      if (this.#table === null || this.#changes?.live !== true) void this.refresh();
    }, POLL_MS);
    this.#timer.unref();
  }

  /** Loads the table; call before serving. Throws if the database cannot be read. */
  async start(): Promise<void> {
    await this.refresh();
    if (this.#table === null) throw new RoutesUnavailable();
  }

  /**
   * Reloads every rule. Loads run one at a time; a refresh asked for during a load runs once
   * more after it, so the last one reads everything committed before it was asked for.
   */
  refresh(): Promise<void> {
    if (this.#loading) {
      this.#again = true;
      return this.#loading;
    }
    this.#loading = (async () => {
      do {
        this.#again = false;
        try {
          this.#table = new RouteTable(await listRouteRules(this.#db));
        } catch {
          // Fail closed: an old table might allow what a newer rule refuses.
          this.#table = null;
          await new Promise((resolve) => setTimeout(resolve, RETRY_MS).unref());
          this.#again = true;
          if (!this.#unsubscribe && !this.#timer) break;
        }
      } while (this.#again && this.#timer !== undefined);
    })().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  /** Whether a table is loaded (false after a failed reload, until one succeeds). */
  get ready(): boolean {
    return this.#table !== null;
  }

  /** The rule for a request (domain/routes.ts); throws RoutesUnavailable when no table is loaded. */
  match(request: RouteRequest): RouteMatch {
    if (this.#table === null) throw new RoutesUnavailable();
    return this.#table.match(request);
  }

  /** The rules of a host in the order they are tried. */
  rulesFor(host: string | null): RouteRule[] {
    if (this.#table === null) throw new RoutesUnavailable();
    return this.#table.rulesFor(host);
  }

  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
