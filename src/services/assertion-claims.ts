// Single use of assertion ids (RFC 7523 §3 item 7) under load: every verified platform token's
// jti is claimed in the database, whose primary key lets each id in once, whichever process
// claims it. Claims are sent together, in one statement (store/trusted-issuers.ts
// claimAssertionIds): those made in one turn of the event loop (the requests read from the
// network at once) go in one statement, at the end of that turn, while fewer than three are on
// their way; past that, they wait and go with the next one. One round trip and one commit then
// serve many requests instead of one each; an idle server waits for nothing (a lone claim goes at
// the end of its turn). With one statement at a time, a busy server waited on the round trip
// (a quarter of its event loop idle in a profile under load). An id presented twice in one batch
// is claimed once; the second presentation is refused whatever the first one's fate, as it would
// be one statement later; in two statements on their way at once, the database lets one in.
import type { Db } from '../db/tables.ts';
import { claimAssertionIds } from '../store/trusted-issuers.ts';

/** Claims sent in one statement at most. */
const MAX_BATCH = 256;
/** Statements on their way at once (each on a connection of its own). */
const MAX_IN_FLIGHT = 3;

interface Pending { id: string; expiresAt: Date; resolve(claimed: boolean): void; reject(error: unknown): void }

export class AssertionClaims {
  #db: Db;
  #queue: Pending[] = [];
  #scheduled = false;
  #inFlight = 0;

  constructor(db: Db) {
    this.#db = db;
  }

  /** True when `id` was not claimed before (now it is); false for a replay. */
  claim(id: string, expiresAt: Date): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ id, expiresAt, resolve, reject });
      this.#schedule();
    });
  }

  /** Sends what is queued at the end of this turn, unless every statement slot is taken. */
  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= MAX_IN_FLIGHT || !this.#queue.length) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#send();
    });
  }

  async #send(): Promise<void> {
    if (!this.#queue.length || this.#inFlight >= MAX_IN_FLIGHT) return;
    this.#inFlight += 1;
    const batch = new Map<string, Pending>();
    for (const pending of this.#queue.splice(0, MAX_BATCH)) {
      if (batch.has(pending.id)) pending.resolve(false);
      else batch.set(pending.id, pending);
    }
    try {
      const claimed = await claimAssertionIds(this.#db, [...batch.values()]);
      for (const pending of batch.values()) pending.resolve(claimed.has(pending.id));
    } catch (error) {
      for (const pending of batch.values()) pending.reject(error);
    } finally {
      this.#inFlight -= 1;
      this.#schedule();
    }
  }
}
