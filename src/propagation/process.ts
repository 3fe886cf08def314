// This process's part in propagation: it listens to the change feed, hands every change to the
// caches that subscribe (oidc/directory.ts, oidc/provider-holder.ts), and answers for them.
//
// "At once" across processes: a caching process registers in server_processes when its feed
// connects, before it caches anything, and acknowledges the markers writers publish after their
// changes (write.ts). Changes arrive in commit order and each is handed to the caches before the
// marker behind it is acknowledged, so an acknowledged marker means every earlier change has been
// applied. A heartbeat keeps the registration alive and checks that the feed still delivers: a
// process whose feed is gone unregisters, and its caches read through to the database meanwhile.
import { randomUUID } from 'node:crypto';
import type { ChangeFeed } from '../db/change-feed.ts';
import type { Db } from '../db/tables.ts';
import {
  acknowledgeMarker, deleteGoneProcesses, publishChange, registerProcess, unregisterProcess,
} from '../store/changes.ts';
import { parseMessage, type Change } from './changes.ts';

export interface ChangeSubscriber {
  /**
   * A change committed by some process (this one included), in commit order. A subscriber that
   * must reload before it is current returns the reload: markers behind the change are not
   * acknowledged until it settles, so a writer waits for it (services/live-routes.ts).
   */
  onChange(change: Change): void | Promise<void>;
  /** The feed (re)connected or dropped: anything cached may be stale. */
  onReset(): void;
}

/** What a cache needs: whether changes arrive now, and the changes themselves. */
export interface ChangeSource {
  /** True while changes arrive; a cache must bypass itself otherwise. */
  readonly live: boolean;
  subscribe(subscriber: ChangeSubscriber): () => void;
}

const HEARTBEAT_MS = 5000;

export class Propagation implements ChangeSource {
  #db: Db;
  #feed: ChangeFeed | null;
  #subscribers = new Set<ChangeSubscriber>();
  #unsubscribe: (() => void) | undefined;
  /** This process in server_processes. */
  readonly processId = randomUUID();
  #registered = false;
  #markerSeen = 0;
  #markerAcked = 0;
  #acking: Promise<void> | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #pingOutstanding = false;
  /** Reloads subscribers are still doing for changes already handed to them. */
  #applying = new Set<Promise<void>>();

  /** `feed`: null where there is none (the embedded store): nothing is cached, nothing registers. */
  constructor(db: Db, feed: ChangeFeed | null) {
    this.#db = db;
    this.#feed = feed;
    this.#unsubscribe = feed?.subscribe({
      onMessage: (payload) => this.#onMessage(payload),
      onConnect: () => this.#register(),
      onReset: () => this.#onReset(),
    });
    if (feed) {
      this.#heartbeat = setInterval(() => this.#beat(), HEARTBEAT_MS);
      this.#heartbeat.unref();
    }
  }

  get live(): boolean {
    return this.#feed?.live === true;
  }

  subscribe(subscriber: ChangeSubscriber): () => void {
    this.#subscribers.add(subscriber);
    return () => this.#subscribers.delete(subscriber);
  }

  /** Connects the feed; this process registers before the feed reports itself live. */
  async start(): Promise<void> {
    await this.#feed?.start();
  }

  /** Stops listening and unregisters (the feed itself belongs to the database, which closes it). */
  async close(): Promise<void> {
    this.#unsubscribe?.();
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    await this.#acking;
    if (this.#registered) {
      this.#registered = false;
      await unregisterProcess(this.#db, this.processId).catch(() => {});
    }
  }

  /** Before caching starts: everything loaded from now on is newer than every marker so far. */
  async #register(): Promise<void> {
    await registerProcess(this.#db, this.processId);
    this.#registered = true;
    void deleteGoneProcesses(this.#db).catch(() => {});
  }

  #onReset(): void {
    for (const subscriber of this.#subscribers) subscriber.onReset();
    this.#pingOutstanding = false;
    if (!this.live && this.#registered) {
      // Notifications are lost: the caches read through to the database until the feed is back,
      // so writers need not wait for this process.
      this.#registered = false;
      void unregisterProcess(this.#db, this.processId).catch(() => {});
    }
  }

  #onMessage(payload: string): void {
    const message = parseMessage(payload);
    if (!message) return;
    if (message.kind === 'ping') {
      if (message.processId === this.processId) this.#pingOutstanding = false;
      return;
    }
    if (message.kind === 'marker') {
      // Every change committed before this marker has been handed to the caches, in order.
      this.#markerSeen = Math.max(this.#markerSeen, message.seq);
      this.#acknowledge();
      return;
    }
    for (const subscriber of this.#subscribers) {
      const applying = subscriber.onChange(message);
      if (applying) {
        const tracked = applying.catch(() => {}).finally(() => this.#applying.delete(tracked));
        this.#applying.add(tracked);
      }
    }
  }

  #acknowledge(): void {
    if (this.#acking || !this.#registered) return;
    this.#acking = (async () => {
      while (this.#registered && this.#markerSeen > this.#markerAcked) {
        const marker = this.#markerSeen;
        // Changes before this marker are applied only once their reloads are done.
        while (this.#applying.size > 0) await Promise.all([...this.#applying]);
        try {
          await acknowledgeMarker(this.#db, this.processId, marker);
          this.#markerAcked = marker;
        } catch {
          return; // the heartbeat tries again
        }
      }
    })().finally(() => {
      this.#acking = undefined;
    });
  }

  /**
   * Every few seconds: refresh this process's heartbeat, and check that a notification it sends
   * itself comes back. If the previous one has not, the feed is dead without saying so: drop it
   * (the caches are flushed and bypassed) and reconnect.
   */
  #beat(): void {
    if (!this.#registered || !this.live) return;
    if (this.#pingOutstanding) {
      this.#pingOutstanding = false;
      this.#feed?.reconnect();
      return;
    }
    this.#pingOutstanding = true;
    publishChange(this.#db, { kind: 'ping', processId: this.processId }).catch(() => {});
    if (this.#markerSeen > this.#markerAcked) {
      this.#acknowledge();
      return;
    }
    acknowledgeMarker(this.#db, this.processId, this.#markerAcked).catch(() => {});
  }
}
