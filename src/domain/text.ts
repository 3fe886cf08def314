// Text that callers send: copies that do not keep their request alive, and the checks that keep NUL
// bytes and invalid UTF-8 away from everything behind the HTTP layer (Postgres refuses NUL in
// text and \u0000 in jsonb; a request must get a 4xx for them, never a 500). A leaf module.

const LATIN1 = /^[\x00-\xff]*$/;

/**
 * A copy of `value` that shares no memory with the string it was cut from. V8 represents a
 * substring (a client_id parsed from a 12 KB query string, say) as a view that keeps the whole
 * parent alive: a key kept in a cache or counter must be a copy, or it pins the request.
 */
export function detach(value: string): string {
  return LATIN1.test(value)
    ? Buffer.from(value, 'latin1').toString('latin1')
    : Buffer.from(value, 'utf16le').toString('utf16le');
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A string Postgres and every encoder take as it is: no NUL, no lone surrogate. */
export function isCleanString(value: string): boolean {
  return !value.includes('\u0000') && !LONE_SURROGATE.test(value);
}

/** Whether every string in a parsed JSON value (keys included) is clean. */
export function isCleanJson(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return isCleanString(value);
  if (value === null || typeof value !== 'object') return true;
  // JSON.parse nests as deep as the text does; a body within the size limit is far less deep.
  if (depth > 64) return false;
  if (Array.isArray(value)) return value.every((item) => isCleanJson(item, depth + 1));
  return Object.entries(value).every(([key, item]) => isCleanString(key) && isCleanJson(item, depth + 1));
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bytes as UTF-8 text if they are valid UTF-8 without NUL; undefined otherwise. */
export function decodeCleanUtf8(bytes: Uint8Array): string | undefined {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    return undefined;
  }
  return text.includes('\u0000') ? undefined : text;
}

const isHex = (byte: number | undefined) => byte !== undefined
  && ((byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66));

/**
 * Percent-decodes `value` (with "+" as a space when `plus`, as in forms) byte by byte; undefined
 * unless the result is UTF-8 without NUL. A "%" not followed by two hex digits stays as it is,
 * as the parsers of Node and oidc-provider leave it.
 */
export function decodePercent(value: string, plus: boolean): string | undefined {
  if (!isCleanString(value)) return undefined;
  if (!value.includes('%')) return plus ? value.replace(/\+/g, ' ') : value;
  // "%", "+" and hex digits are ASCII, so scanning the UTF-8 bytes finds exactly them.
  const raw = Buffer.from(value, 'utf8');
  const out = Buffer.allocUnsafe(raw.length);
  let length = 0;
  for (let i = 0; i < raw.length; i += 1) {
    const byte = raw[i]!;
    if (byte === 0x25 && isHex(raw[i + 1]) && isHex(raw[i + 2])) {
      out[length++] = Number.parseInt(raw.toString('latin1', i + 1, i + 3), 16);
      i += 2;
    } else {
      out[length++] = plus && byte === 0x2b ? 0x20 : byte;
    }
  }
  return decodeCleanUtf8(out.subarray(0, length));
}

/** ASCII without NUL: UTF-8 as it is, each character its own byte. */
const PLAIN_ASCII = /^[\x01-\x7f]*$/;

/** A header value as Node gives it (each byte one character): clean UTF-8 once read as bytes. */
export function decodeHeaderValue(value: string): string | undefined {
  if (PLAIN_ASCII.test(value)) return value;
  return decodeCleanUtf8(Buffer.from(value, 'latin1'));
}
