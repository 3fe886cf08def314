// Named prepared statements for the few statements a busy server sends many times a second (the
// single-use claims of platform tokens' jti, the audit log's batches): Postgres then parses and
// plans each once per connection instead of on every execution, which halved the database's CPU
// per claimed jti (about 21-29 µs to 11 µs per row at eight rows a statement; 95 to 50 µs for a
// lone row). A statement asks for it with a leading `/* prepared:<name> */` comment in its
// (constant) text; every other statement goes as before. Names come from the source only, never
// from input, so a connection holds at most one prepared statement per marked statement. Works
// against Postgres directly and through a pooler in session mode, the only mode Postern supports
// (docs/scaling.md); the embedded database does not go through here.
import type pg from 'pg';

const MARK = /^\/\* prepared:([a-z_]+) \*\//;

/** The name a statement's text asks to be prepared under, if any. */
export function preparedName(text: string): string | undefined {
  return MARK.exec(text)?.[1];
}

/** Makes `client` send marked statements as named prepared statements (pg caches them per connection). */
export function namePreparedStatements(client: pg.ClientBase): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as { query: unknown }).query = (...args: unknown[]) => {
    const [text, values] = args;
    const name = args.length <= 2 && typeof text === 'string' ? preparedName(text) : undefined;
    return name === undefined ? query(...args) : query({ name, text, values });
  };
}
