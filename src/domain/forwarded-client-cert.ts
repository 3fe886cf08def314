// The client certificate Envoy describes in x-forwarded-client-cert (XFCC), as the decision
// endpoint's ext-authz contract reads it (docs/gateways.md, "Envoy"): its x5t#S256 (RFC 8705
// §3.1), the base64url SHA-256 of the certificate's DER, from the element's `Hash` (hex SHA-256
// of the DER) or from its `Cert` (URL-encoded PEM). Pure: no I/O.
//
// Which element: Envoy appends the element of the connection it terminated to the end of the
// header (APPEND_FORWARD), or sets it as the only one (SANITIZE_SET). Only the one-element form
// is taken. Envoy writes the certificate's URI and DNS names unquoted and unescaped, so a client
// certificate whose URI name holds `,Hash=...` makes one element read as two, the second of its
// choosing; and the elements before Envoy's own are whatever the client sent. Neither can be
// told apart from a real second element, so a header of several elements is no certificate.
//
// Within the element, Envoy writes its keys in a fixed order (By, Hash, Cert, Chain, Subject,
// URI, DNS; Subject always quoted, with `"` escaped): a key out of that order, repeated where
// Envoy writes it once, or unknown, can only be a certificate's own text, and makes the header
// no certificate. So do a malformed Hash or Cert, and a Hash and a Cert that disagree.
import { createHash } from 'node:crypto';
import { parseForwardedClientCert, pemCertificates } from './certificates.ts';

/** The header Envoy forwards (lower case, as Node names headers). */
export const FORWARDED_CLIENT_CERT_HEADER = 'x-forwarded-client-cert';

/** The keys of an element in the order Envoy writes them; By, URI and DNS may repeat. */
const KEY_ORDER = ['by', 'hash', 'cert', 'chain', 'subject', 'uri', 'dns'];
const REPEATED = new Set(['by', 'uri', 'dns']);
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** x5t#S256 of the DER of a URL-encoded PEM certificate; undefined when it is not one. */
function thumbprintOfPem(value: string): string | undefined {
  let pem: string;
  try {
    pem = decodeURIComponent(value);
  } catch {
    return undefined;
  }
  const blocks = pemCertificates(pem);
  if (blocks.length !== 1 || blocks[0] !== pem.trim()) return undefined;
  const body = blocks[0].replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  if (!BASE64.test(body)) return undefined;
  return createHash('sha256').update(Buffer.from(body, 'base64')).digest('base64url');
}

/**
 * The x5t#S256 of the client certificate of a one-element x-forwarded-client-cert header, or
 * undefined when the header describes none, or cannot be read safely (see above).
 */
export function forwardedClientCertThumbprint(header: string): string | undefined {
  const elements = parseForwardedClientCert(header);
  if (elements?.length !== 1) return undefined;
  let rank = -1;
  let hash: string | undefined;
  let cert: string | undefined;
  for (const [key, value] of elements[0]!) {
    const at = KEY_ORDER.indexOf(key);
    if (at < 0 || at < rank || (at === rank && !REPEATED.has(key))) return undefined;
    rank = at;
    if (key === 'hash') hash = value;
    else if (key === 'cert') cert = value;
  }
  if (hash !== undefined && !SHA256_HEX.test(hash)) return undefined;
  const fromHash = hash === undefined ? undefined : Buffer.from(hash, 'hex').toString('base64url');
  if (cert === undefined) return fromHash;
  const fromCert = thumbprintOfPem(cert);
  if (!fromCert || (fromHash !== undefined && fromHash !== fromCert)) return undefined;
  return fromCert;
}
