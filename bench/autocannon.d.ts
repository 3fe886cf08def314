// autocannon ships no types and @types/autocannon is not a dependency: declare only what the
// benchmark uses, so that `tsc --noEmit` checks our calls.
declare module 'autocannon' {
  interface Options {
    url: string;
    method?: 'GET' | 'POST';
    headers?: Record<string, string>;
    body?: string;
    connections?: number;
    /** Seconds. */
    duration?: number;
    /** A number of requests to send instead of a duration. */
    amount?: number;
    /** Called with every response body; false counts as a mismatch. */
    verifyBody?: (body: string) => boolean;
    /** A sequence of requests per connection, each able to change itself from the last answer. */
    requests?: Request[];
  }

  /** Per connection: what the requests of one connection pass each other. */
  type Context = Record<string, unknown>;

  interface Request {
    method?: 'GET' | 'POST';
    path?: string;
    headers?: Record<string, string>;
    body?: string;
    setupRequest?: (request: { body?: string; headers?: Record<string, string> } & Record<string, unknown>, context: Context) => unknown;
    onResponse?: (status: number, body: string, context: Context) => void;
  }

  interface Histogram {
    average: number;
    total: number;
    p50: number;
    p99: number;
  }

  export interface Result {
    requests: Histogram;
    /** Milliseconds. */
    latency: Histogram;
    duration: number;
    errors: number;
    timeouts: number;
    mismatches: number;
    non2xx: number;
    statusCodeStats: Record<string, { count: number }>;
  }

  /** Resolves when the run ends; `stop()` ends it early. */
  function autocannon(options: Options): Promise<Result> & { stop(): void };
  export default autocannon;
}
