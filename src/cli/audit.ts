// postern audit tail [--follow] [--type ...] [--limit n]
import { Command } from 'commander';
import type { AuditEventView } from '../services/audit-queries.ts';
import { action, collect, words } from './context.ts';

function line(event: AuditEventView): string {
  const who = `${event.actor.type}${event.actor.id ? `:${event.actor.id}` : ''}`;
  const what = event.target ? ` -> ${event.target.type}:${event.target.id ?? '-'}` : '';
  const details = Object.keys(event.details).length ? `  ${JSON.stringify(event.details)}` : '';
  const from = event.sourceAddress ? `  from ${event.sourceAddress}` : '';
  const request = event.requestId ? `  request ${event.requestId}` : '';
  return `${event.occurredAt}  ${event.type}  ${event.outcome}  ${who}${what}${from}${request}${details}`;
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new Error(`--limit must be a whole number from 1 to 1000, got "${value}"`);
  return n;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function auditCommand(): Command {
  const command = new Command('audit').description('the audit log of security events (docs/audit.md)');

  command.command('tail')
    .description('print the latest events, oldest first; --json prints one JSON object per line')
    .option('--type <type>', 'only this event type, or a family like "client.*" (repeatable, comma-separated)', collect, [])
    .option('--limit <n>', 'how many of the latest events (default 20)', positive, 20)
    .option('-f, --follow', 'keep printing new events as they are written (Ctrl-C stops)')
    .action(action(async ({ db, out }, opts: { type: string[]; limit: number; follow?: boolean }) => {
      // Loaded when the command runs: help and usage errors load no database code.
      const { tailAuditEvents } = await import('../services/audit-queries.ts');
      const type = words(opts.type);
      // Followed events are printed as they come; otherwise with the command's result.
      const print = (events: AuditEventView[]) => {
        const text = events.map((event) => `${out.json ? JSON.stringify(event) : line(event)}\n`).join('');
        if (opts.follow) process.stdout.write(text);
        else out.write(text);
      };
      const first = await tailAuditEvents(db, { limit: opts.limit, type });
      print(first);
      if (!opts.follow) return;
      let last = first.at(-1)?.id ?? (await tailAuditEvents(db, { limit: 1 })).at(-1)?.id ?? '0';
      let stop = false;
      const onSignal = () => { stop = true; };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        while (!stop) {
          await sleep(1000);
          // Events arrive in batches from the servers, about once a second.
          for (;;) {
            const events = await tailAuditEvents(db, { limit: 500, afterId: last, type });
            print(events);
            if (events.length) last = events.at(-1)!.id;
            if (events.length < 500 || stop) break;
          }
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    }));

  return command;
}
