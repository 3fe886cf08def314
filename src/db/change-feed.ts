// Cross-process change notifications over Postgres LISTEN/NOTIFY: the connection that listens.
// Writers call pg_notify inside the transaction that changes the data (src/propagation/write.ts);
// Postgres delivers at commit. src/propagation/process.ts is its only listener.
import pg from 'pg';

export const CHANGES_CHANNEL = 'postern_changes';

export interface ChangeListener {
  onMessage(payload: string): void;
  /** Awaited once LISTEN is in place, before the feed reports itself live. */
  onConnect?(): Promise<void>;
  /** Called when the feed (re)connects or drops: anything cached may be stale. */
  onReset(): void;
}

export interface ChangeFeed {
  /** True while notifications are being received; caches must bypass themselves otherwise. */
  readonly live: boolean;
  start(): Promise<void>;
  /** Drops the connection (if any) and connects again; listeners see a reset. */
  reconnect(): void;
  subscribe(listener: ChangeListener): () => void;
  close(): Promise<void>;
}

export class PostgresChangeFeed implements ChangeFeed {
  #connectionString: string;
  #client: pg.Client | undefined;
  #listeners = new Set<ChangeListener>();
  #live = false;
  #closed = false;
  #retry: NodeJS.Timeout | undefined;

  constructor(connectionString: string) {
    this.#connectionString = connectionString;
  }

  get live(): boolean {
    return this.#live;
  }

  subscribe(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async start(): Promise<void> {
    await this.#connect(true);
  }

  #reset(): void {
    for (const listener of this.#listeners) listener.onReset();
  }

  async #connect(initial: boolean): Promise<void> {
    const client = new pg.Client({
      connectionString: this.#connectionString,
      connectionTimeoutMillis: 5000,
      // A silently dead connection would stop notifications without an error.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    const lost = () => {
      if (this.#client !== client) return;
      this.#client = undefined;
      this.#live = false;
      this.#reset();
      client.end().catch(() => {});
      this.#scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (message) => {
      if (message.channel !== CHANGES_CHANNEL || message.payload === undefined) return;
      for (const listener of this.#listeners) listener.onMessage(message.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGES_CHANNEL}`);
      for (const listener of this.#listeners) await listener.onConnect?.();
    } catch (error) {
      client.removeAllListeners();
      client.on('error', () => {});
      await client.end().catch(() => {});
      // At start the caller decides what a dead database means; later, keep trying.
      if (initial) throw error;
      this.#scheduleReconnect();
      return;
    }
    if (this.#closed) {
      await client.end().catch(() => {});
      return;
    }
    this.#client = client;
    this.#live = true;
    // Anything cached before this point may have missed notifications.
    this.#reset();
  }

  reconnect(): void {
    // 'end' fires, and the usual loss handling resets listeners and reconnects.
    this.#client?.end().catch(() => {});
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#retry) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      void this.#connect(false);
    }, 1000);
    this.#retry.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#live = false;
    if (this.#retry) clearTimeout(this.#retry);
    const client = this.#client;
    this.#client = undefined;
    if (client) {
      client.removeAllListeners();
      client.on('error', () => {});
      await client.end().catch(() => {});
    }
  }
}
