// X.509 client certificates (RFC 8705): reading them, their thumbprint, whether a trusted CA
// issued them, and whether they carry the subject a tls_client_auth client registered.
import { createHash, X509Certificate } from 'node:crypto';
import ipaddr from 'ipaddr.js';

/** The registered subject of a tls_client_auth client: exactly one of these (RFC 8705 §2.1.2). */
export const TLS_SUBJECT_FIELDS = {
  subject_dn: 'tls_client_auth_subject_dn',
  san_dns: 'tls_client_auth_san_dns',
  san_ip: 'tls_client_auth_san_ip',
  san_email: 'tls_client_auth_san_email',
  san_uri: 'tls_client_auth_san_uri',
} as const;
export type TlsSubjectField = keyof typeof TLS_SUBJECT_FIELDS;
export interface TlsSubject { field: TlsSubjectField; value: string }

/** RFC 8705 §3.1: base64url SHA-256 of the DER certificate, the `x5t#S256` of a bound token. */
export function certificateThumbprint(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('base64url');
}

/**
 * A certificate as PEM, as base64 DER, or URL-encoded (how TLS-terminating proxies forward it:
 * nginx `$ssl_client_escaped_cert`, cloud load balancers), or the `Cert` of an Envoy
 * X-Forwarded-Client-Cert element. Undefined when unreadable.
 */
export function parseCertificate(text: string): X509Certificate | undefined {
  let value = text.trim();
  // Envoy/Istio: `By=...;Hash=...;Cert="<URL-encoded PEM>";Subject=...`, one element when the
  // proxy sets the header (SANITIZE_SET). Several elements (a chain of proxies appending) do not
  // say which one is the caller's: no certificate.
  const xfcc = [...value.matchAll(/(?:^|[;,])Cert="?([^";,]+)"?/g)];
  if (xfcc.length > 1) return undefined;
  if (xfcc.length === 1) value = xfcc[0]![1]!;
  if (value.includes('%')) {
    try {
      value = decodeURIComponent(value);
    } catch {
      return undefined;
    }
  }
  const body = value.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  if (!body || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(body)) return undefined;
  try {
    return new X509Certificate(Buffer.from(body, 'base64'));
  } catch {
    return undefined;
  }
}

/** Every certificate in a PEM bundle (a CA file). Throws when there is none or one is unreadable. */
export function parseCertificateBundle(pem: string, what: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${what} holds no PEM certificate`);
  return blocks.map((block, index) => {
    const cert = parseCertificate(block);
    if (!cert) throw new Error(`${what}: certificate ${index + 1} cannot be read`);
    return cert;
  });
}

function isCurrent(cert: X509Certificate, now: number): boolean {
  return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
}

/**
 * Whether one of the trusted CA certificates issued `cert` (name, signature, CA flag) and both
 * are valid now. Used for certificates a proxy forwards; a certificate presented to Postern's own
 * TLS listener is verified by TLS itself.
 */
export function issuedByTrustedCa(cert: X509Certificate, authorities: readonly X509Certificate[], now = Date.now()): boolean {
  if (!isCurrent(cert, now)) return false;
  return authorities.some((ca) => ca.ca && isCurrent(ca, now) && cert.checkIssued(ca) && cert.verify(ca.publicKey));
}

// ---- distinguished names (RFC 4514)

/** Attribute types compared case-insensitively; these aliases name the same attribute. */
const TYPE_ALIASES: Record<string, string> = { E: 'EMAILADDRESS', EMAIL: 'EMAILADDRESS', S: 'ST', SN: 'SURNAME' };
const normalizeType = (type: string) => {
  const upper = type.trim().toUpperCase();
  return TYPE_ALIASES[upper] ?? upper;
};

/**
 * The attributes of a distinguished name written as RFC 4514 (`CN=orders,O=Example\, Inc.,C=DE`),
 * as `TYPE=value` strings. Throws on a malformed name. Hex values (`#04...`) are not accepted.
 */
export function parseDistinguishedName(text: string): string[] {
  const attributes: string[] = [];
  let type = '';
  let value = '';
  let inValue = false;
  const finish = () => {
    if (!inValue || !type.trim() || !/^[A-Za-z][A-Za-z0-9-]*$|^\d+(\.\d+)+$/.test(type.trim())) {
      throw new Error('expected TYPE=value pairs separated by commas, like CN=orders,O=Example');
    }
    const trimmed = value.replace(/^ +/, '').replace(/(?<!\\) +$/, '');
    if (!trimmed) throw new Error(`${type.trim()} has an empty value`);
    if (trimmed.startsWith('#')) throw new Error('hex-encoded values (#...) are not supported; write the value as text');
    attributes.push(`${normalizeType(type)}=${unescapeValue(trimmed)}`);
    type = '';
    value = '';
    inValue = false;
  };
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i]!;
    if (!inValue) {
      if (char === '=') inValue = true;
      else type += char;
      continue;
    }
    if (char === '\\') {
      value += char + (text[i + 1] ?? '');
      i += 1;
    } else if (char === ',' || char === '+' || char === ';') {
      finish();
    } else {
      value += char;
    }
  }
  finish();
  return attributes;
}

function unescapeValue(value: string): string {
  const bytes: number[] = [];
  const out: string[] = [];
  const flush = () => {
    if (bytes.length) out.push(Buffer.from(bytes).toString('utf8'));
    bytes.length = 0;
  };
  for (let i = 0; i < value.length; i += 1) {
    if (value[i] === '\\') {
      const hex = value.slice(i + 1, i + 3);
      if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
        bytes.push(Number.parseInt(hex, 16));
        i += 2;
        continue;
      }
      flush();
      out.push(value[i + 1] ?? '');
      i += 1;
      continue;
    }
    flush();
    out.push(value[i]!);
  }
  flush();
  return out.join('');
}

/** The subject of a certificate as `TYPE=value` strings (the same form as parseDistinguishedName). */
function certificateSubject(cert: X509Certificate): string[] {
  const legacy = cert.toLegacyObject().subject as Record<string, string | string[]> | undefined;
  if (!legacy) return [];
  return Object.entries(legacy).flatMap(([type, values]) =>
    (Array.isArray(values) ? values : [values]).map((value) => `${normalizeType(type)}=${value}`));
}

const sameMultiset = (a: string[], b: string[]) => {
  if (a.length !== b.length) return false;
  const sortedB = [...b].sort();
  return [...a].sort().every((item, index) => item === sortedB[index]);
};

/** URI entries of the subjectAltName (values with separators in them are JSON-quoted by Node). */
function sanUris(cert: X509Certificate): string[] {
  const uris: string[] = [];
  for (const match of (cert.subjectAltName ?? '').matchAll(/(?:^|, )URI:("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const raw = match[1]!;
    try {
      uris.push(raw.startsWith('"') ? JSON.parse(raw) as string : raw);
    } catch {
      // An entry Node could not print plainly and we cannot read: it matches nothing.
    }
  }
  return uris;
}

/**
 * RFC 8705 §2.1.2: the certificate carries the registered subject. The DN must have exactly the
 * registered attributes, in any order, values compared exactly; SAN entries compare exactly
 * (DNS names without case, IP addresses in any notation), never against wildcards.
 */
export function certificateMatchesSubject(cert: X509Certificate, field: TlsSubjectField, expected: string): boolean {
  switch (field) {
    case 'subject_dn': {
      let wanted: string[];
      try {
        wanted = parseDistinguishedName(expected);
      } catch {
        return false;
      }
      return sameMultiset(certificateSubject(cert), wanted);
    }
    case 'san_dns':
      return cert.checkHost(expected, { subject: 'never', wildcards: false }) !== undefined;
    case 'san_ip':
      try {
        return cert.checkIP(ipaddr.process(expected).toString()) !== undefined;
      } catch {
        return false;
      }
    case 'san_email':
      return cert.checkEmail(expected, { subject: 'never' }) !== undefined;
    case 'san_uri':
      return sanUris(cert).includes(expected);
    default:
      return false;
  }
}
