// Signing keys in the console: each key's states over time (next, active, retiring, retired),
// the next scheduled rotation, and rotating now.
import type Koa from 'koa';
import { nextRotation } from '../../services/console-overview.ts';
import { listKeys, rotateSigningKeys } from '../../services/key-rotation.ts';
import { auditOf, noticeOf, readChange, redirectTo, render, serviceMessage, type ConsoleDeps, type ConsolePages } from './kit.ts';

const DAY_MS = 86_400_000;

async function keysPage(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  const keys = await listKeys(deps.db);
  const now = Date.now();
  render(ctx, 'keys', {
    title: 'Signing keys', section: 'keys', notice: noticeOf(ctx),
    keys: keys.map((key) => ({ ...key, ageDays: Math.floor((now - Date.parse(key.createdAt)) / DAY_MS) })),
    next: nextRotation(keys.filter((key) => key.state !== 'retired'), deps.keyRotation.rotationDays), rotationDays: deps.keyRotation.rotationDays,
    propagationSeconds: deps.keyRotation.propagationSeconds, ...extra,
  }, { status });
}

export function registerKeyPages(pages: ConsolePages, deps: ConsoleDeps): void {
  pages.get('/keys', (ctx) => keysPage(deps, ctx));
  pages.post('/keys/rotate', async (ctx) => {
    await readChange(deps, ctx);
    let added: string[];
    try {
      const rotation = await rotateSigningKeys(deps.db, deps.keyring, { propagationSeconds: deps.keyRotation.propagationSeconds });
      for (const key of rotation.added) {
        auditOf(deps, ctx).record({
          type: 'key.rotated', target: { type: 'key', id: key.kid }, details: { alg: key.alg, since: key.activatesAt },
        });
      }
      added = rotation.added.map((key) => key.kid);
      await deps.reloadKeys();
    } catch (error) {
      await keysPage(deps, ctx, { error: serviceMessage(error) }, 409);
      return;
    }
    redirectTo(ctx, '/keys', `New keys published: ${added.join(', ')}. They sign after ${deps.keyRotation.propagationSeconds} seconds.`);
  });
}
