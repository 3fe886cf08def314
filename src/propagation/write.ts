// The one way to write what other processes cache: the work and the changes it makes commit in one
// transaction (NOTIFY is delivered at commit, in commit order), so that a write cannot forget to
// tell the caches, and a change is never announced for work that rolled back.
import type { Db } from '../db/tables.ts';
import { countLaggingProcesses, publishChange, publishMarker } from '../store/changes.ts';
import type { Change } from './changes.ts';

/**
 * The changes a write publishes: fixed, or read from what the work returned (a function whose
 * parameter is annotated: the result must have what it reads).
 */
export type Changes<R> = Change | readonly Change[] | ((result: R) => Change | readonly Change[]);

async function commit<T extends R, R>(db: Db, changes: Changes<R>, work: (trx: Db) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    const result = await work(trx);
    const published = typeof changes === 'function' ? changes(result) : changes;
    for (const change of Array.isArray(published) ? published : [published as Change]) await publishChange(trx, change);
    return result;
  });
}

/**
 * Commits `work` with `changes`, then waits until every live Postern process sharing the database
 * has applied them, so that the change holds "at once" everywhere when this returns (a disabled
 * client is refused by every process; RFC 7009 §2.2: a revoked token is not usable after the
 * answer). Gives up waiting after `timeoutMs` (a stalled process stops counting once its heartbeat
 * lapses).
 */
export async function writeAndPropagate<T extends R, R = T>(
  db: Db,
  changes: Changes<R>,
  work: (trx: Db) => Promise<T>,
  timeoutMs = 3000,
): Promise<T> {
  const result = await commit(db, changes, work);
  await awaitPropagation(db, timeoutMs);
  return result;
}

/**
 * Commits `work` with `changes` without waiting for the other processes: for changes they act on
 * by themselves afterwards (new signing keys are loaded by each server on its own), where an
 * acknowledgement would promise nothing.
 */
export function writeAndPublish<T extends R, R = T>(db: Db, changes: Changes<R>, work: (trx: Db) => Promise<T>): Promise<T> {
  return commit(db, changes, work);
}

/**
 * Waits until every live caching process has applied the changes this connection committed so
 * far: publishes a marker after them and polls until every process has acknowledged it (each
 * applies changes in order, process.ts). Resolves false if some process did not confirm within
 * `timeoutMs`.
 */
async function awaitPropagation(db: Db, timeoutMs: number): Promise<boolean> {
  const marker = await publishMarker(db);
  const deadline = Date.now() + timeoutMs;
  let pause = 1;
  for (;;) {
    if ((await countLaggingProcesses(db, marker)) === 0) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 25);
  }
}
