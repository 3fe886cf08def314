// Route path patterns, hosts and methods: how a route policy names the requests it covers.
// A pattern is a path of segments: a literal segment matches itself exactly (byte for byte, case
// sensitive, like the path of an RFC 3986 URI), `{name}` matches exactly one non-empty segment,
// and `*` as the last segment matches any rest of the path (zero or more characters after the
// slash before it). Patterns are parsed once, when a rule is written, and again when a table is
// compiled; nothing here does I/O.

export type PatternSegment =
  | { kind: 'literal'; value: string }
  | { kind: 'param'; name: string }
  | { kind: 'rest' };

export interface PathPattern {
  /** The pattern as written, e.g. /orders/{id} */
  source: string;
  segments: PatternSegment[];
  /** True when the last segment is `*`. */
  prefix: boolean;
  literalCount: number;
  /** The pattern with parameter names erased: two rules with the same shape cover the same paths. */
  shape: string;
}

const MAX_PATTERN_LENGTH = 1024;
const MAX_SEGMENTS = 64;
// RFC 3986 §3.3 pchar without percent-encoding: unreserved, sub-delims, ':' and '@'.
// Percent signs are refused so that one path never has two spellings in a pattern.
const LITERAL = /^[A-Za-z0-9\-._~!$&'()+,;=:@]*$/;
const PARAM = /^\{([A-Za-z_][A-Za-z0-9_]{0,63})\}$/;

/** Parses a path pattern, or returns why it is not one. */
export function parsePathPattern(source: string): PathPattern | { error: string } {
  if (typeof source !== 'string' || !source.startsWith('/')) return { error: 'a path pattern starts with /' };
  if (source.length > MAX_PATTERN_LENGTH) return { error: `a path pattern has at most ${MAX_PATTERN_LENGTH} characters` };
  const parts = source.slice(1).split('/');
  if (parts.length > MAX_SEGMENTS) return { error: `a path pattern has at most ${MAX_SEGMENTS} segments` };
  const segments: PatternSegment[] = [];
  const names = new Set<string>();
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const last = i === parts.length - 1;
    if (part === '*') {
      if (!last) return { error: '* may only be the last segment of a path pattern' };
      segments.push({ kind: 'rest' });
      continue;
    }
    const param = PARAM.exec(part);
    if (param) {
      const name = param[1]!;
      if (names.has(name)) return { error: `the parameter {${name}} appears twice` };
      names.add(name);
      segments.push({ kind: 'param', name });
      continue;
    }
    if (part.includes('*')) return { error: '* is a whole segment, and only the last one (write /orders/*, not /orders*)' };
    if (part.includes('{') || part.includes('}')) return { error: `"${part}" is not a parameter: write {name} with letters, digits and _` };
    if (!LITERAL.test(part)) return { error: `"${part}" has characters a path segment may not hold here (no %, ?, #, spaces or non-ASCII)` };
    if (part === '.' || part === '..') return { error: 'a path pattern may not hold . or .. segments' };
    // An empty segment is allowed only last: "/orders/" names the path with the trailing slash.
    if (part === '' && !last) return { error: 'a path pattern may not hold empty segments (//)' };
    segments.push({ kind: 'literal', value: part });
  }
  const prefix = segments.at(-1)?.kind === 'rest';
  return {
    source,
    segments,
    prefix,
    literalCount: segments.filter((s) => s.kind === 'literal').length,
    shape: '/' + segments.map((s) => (s.kind === 'literal' ? s.value : s.kind === 'param' ? '{}' : '*')).join('/'),
  };
}

/**
 * Whether a path (already normalised by the caller, starting with /) is one the pattern covers.
 * Segments are compared exactly; {param} takes one non-empty segment; * takes the rest.
 */
export function matchesPath(pattern: PathPattern, path: string): boolean {
  if (!path.startsWith('/')) return false;
  const parts = path.slice(1).split('/');
  const segments = pattern.segments;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    // '/orders/*' needs the slash after 'orders': it covers '/orders/' and below, not '/orders'.
    if (segment.kind === 'rest') return parts.length > i;
    if (i >= parts.length) return false;
    const part = parts[i]!;
    if (segment.kind === 'literal') {
      if (part !== segment.value) return false;
    } else if (part === '') {
      return false;
    }
  }
  return parts.length === segments.length;
}

/**
 * Orders two patterns by specificity (negative: a is more specific). Used only among patterns
 * that match the same path, where it is total except for patterns of the same shape:
 * exact before prefix (*), then more literal segments, then more segments, then, segment by
 * segment from the left, a literal before a {param} before *.
 */
export function comparePatterns(a: PathPattern, b: PathPattern): number {
  if (a.prefix !== b.prefix) return a.prefix ? 1 : -1;
  if (a.literalCount !== b.literalCount) return b.literalCount - a.literalCount;
  if (a.segments.length !== b.segments.length) return b.segments.length - a.segments.length;
  for (let i = 0; i < a.segments.length; i++) {
    const rank = kindRank(a.segments[i]!) - kindRank(b.segments[i]!);
    if (rank !== 0) return rank;
  }
  return 0;
}

function kindRank(segment: PatternSegment): number {
  return segment.kind === 'literal' ? 0 : segment.kind === 'param' ? 1 : 2;
}

const HOSTNAME = /^(?=.{1,253}(?::|$))[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::\d{1,5})?$/;
const IPV6_HOST = /^\[[0-9a-f:.]{2,45}\](?::\d{1,5})?$/;

/** A host as rules store it: lowercased, with its port when one is given; undefined when not a host. */
export function normalizeRouteHost(value: string): string | undefined {
  const host = value.trim().toLowerCase();
  if (!HOSTNAME.test(host) && !IPV6_HOST.test(host)) return undefined;
  const port = /:(\d+)$/.exec(host.startsWith('[') ? host.slice(host.indexOf(']')) : host)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return undefined;
  return host;
}

// RFC 9110 §5.6.2 tchar, restricted to letters and '-': every registered method is spelled so.
const METHOD = /^[A-Z][A-Z-]{0,31}$/;

/** A method as rules store it (uppercase), or undefined when not a method. */
export function normalizeRouteMethod(value: string): string | undefined {
  const method = value.trim().toUpperCase();
  return METHOD.test(method) ? method : undefined;
}
