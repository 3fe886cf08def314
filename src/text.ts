// Text that callers send: copies that do not keep their request alive. A leaf module.

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
