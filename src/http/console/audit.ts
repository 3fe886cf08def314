// The audit log in the console: filter by type, actor, target and time, newest first, cursor
// paging; each event opens to show its details.
import type Koa from 'koa';
import { AUDIT_EVENT_TYPES } from '../../domain/audit-events.ts';
import { listAuditEvents } from '../../services/audit-queries.ts';
import { ConsolePageError, listPaging, queryText, render, type ConsoleDeps, type ConsolePages } from './kit.ts';

/** A date or date-time typed in a form (datetime-local gives no zone: read as UTC). */
function timeOf(value: string | undefined, name: string): Date | undefined {
  if (!value) return undefined;
  const date = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(value) ? value : `${value}Z`);
  if (Number.isNaN(date.getTime())) throw new ConsolePageError(400, `${name} is not a date and time.`);
  return date;
}

async function auditPage(deps: ConsoleDeps, ctx: Koa.Context): Promise<void> {
  const filter = {
    type: queryText(ctx, 'type'), actor: queryText(ctx, 'actor'), target: queryText(ctx, 'target'),
    since: queryText(ctx, 'since'), until: queryText(ctx, 'until'),
  };
  const paging = listPaging(ctx, '/audit', filter, 'cursor', 100);
  const page = await listAuditEvents(deps.db, {
    limit: 50, cursor: paging.cursor,
    type: filter.type ? [filter.type] : undefined,
    actor: filter.actor,
    // A target is a client (id or name) or a person (id).
    ...(filter.target ? (filter.target.startsWith('usr_') ? { user: filter.target } : { client: filter.target }) : {}),
    since: timeOf(filter.since, 'From'), until: timeOf(filter.until, 'Until'),
  });
  render(ctx, 'audit', {
    title: 'Audit log', section: 'audit', items: page.items, filter, types: AUDIT_EVENT_TYPES, paging: paging.links(page.nextCursor),
  });
}

export function registerAuditPages(pages: ConsolePages, deps: ConsoleDeps): void {
  pages.get('/audit', (ctx) => auditPage(deps, ctx));
}
