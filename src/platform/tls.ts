// HTTPS on the public listener (TLS_CERT_FILE, TLS_KEY_FILE) and the CAs that issue client
// certificates (TLS_CLIENT_CA_FILE). The files are read at start and again when they change, so
// a renewed certificate or CA bundle is served without a restart.
import type { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import { parseCertificateBundle } from '../domain/certificates.ts';

/** The files it reads (config.ts: TLS_CERT_FILE, TLS_KEY_FILE, TLS_CLIENT_CA_FILE). */
export interface TlsSettings {
  tls: { certFile: string; keyFile: string } | undefined;
  /** Only the CA file is read here; the rest of the mutual-TLS settings is for the HTTP layer. */
  mtls: { caFile: string | undefined; [other: string]: unknown };
}

export interface TlsMaterial {
  /** The listener's secure context options; undefined without TLS_CERT_FILE (plain http). */
  server: tls.SecureContextOptions | undefined;
  /** The CAs of TLS_CLIENT_CA_FILE (none without it). */
  authorities: X509Certificate[];
}

function read(file: string, variable: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new Error(`${variable}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

/** Reads and checks the configured files; throws one clear message for the first problem. */
export function loadTlsMaterial(config: TlsSettings): TlsMaterial {
  const caPem = config.mtls.caFile ? read(config.mtls.caFile, 'TLS_CLIENT_CA_FILE') : undefined;
  const authorities = caPem ? parseCertificateBundle(caPem.toString('utf8'), `TLS_CLIENT_CA_FILE (${config.mtls.caFile})`) : [];
  const notCa = authorities.find((cert) => !cert.ca);
  if (notCa) throw new Error(`TLS_CLIENT_CA_FILE: ${notCa.subject.replace(/\n/g, ', ')} is not a CA certificate`);
  if (!config.tls) return { server: undefined, authorities };
  const server: tls.SecureContextOptions = {
    cert: read(config.tls.certFile, 'TLS_CERT_FILE'),
    key: read(config.tls.keyFile, 'TLS_KEY_FILE'),
    // Verification of client certificates against these CAs only (not the system's); without
    // the file, a certificate is still asked for (self_signed_tls_client_auth needs none).
    ...(caPem ? { ca: caPem } : {}),
  };
  try {
    tls.createSecureContext(server);
  } catch (error) {
    throw new Error(`TLS_CERT_FILE and TLS_KEY_FILE: ${(error as Error).message}`);
  }
  return { server, authorities };
}

/** Options of the HTTPS listener: client certificates are asked for, never required by TLS. */
export function httpsOptions(material: TlsMaterial): tls.TlsOptions {
  return {
    ...material.server,
    // RFC 8705: whether a certificate is needed, and which, depends on the client; a request
    // without one still reaches Postern and gets a protocol error (or needs none at all).
    requestCert: true,
    rejectUnauthorized: false,
  };
}

const CHECK_INTERVAL_MS = 10_000;

/**
 * Calls `onChange` with the new material when one of the files changes (checked every 10 s);
 * `onError` when the new files cannot be used, the old ones staying in use. Returns the stop.
 */
export function watchTlsFiles(
  config: TlsSettings,
  onChange: (material: TlsMaterial) => void,
  onError: (error: Error) => void,
): () => void {
  const files = [config.tls?.certFile, config.tls?.keyFile, config.mtls.caFile].filter((file): file is string => Boolean(file));
  let pending: NodeJS.Timeout | undefined;
  const changed = (current: fs.Stats, previous: fs.Stats) => {
    if (current.mtimeMs === previous.mtimeMs && current.size === previous.size && current.ino === previous.ino) return;
    // A renewal writes the certificate and the key one after the other: read once both are there.
    clearTimeout(pending);
    pending = setTimeout(() => {
      pending = undefined;
      try {
        onChange(loadTlsMaterial(config));
      } catch (error) {
        onError(error as Error);
      }
    }, 500).unref();
  };
  for (const file of files) fs.watchFile(file, { interval: CHECK_INTERVAL_MS, persistent: false }, changed);
  return () => {
    clearTimeout(pending);
    for (const file of files) fs.unwatchFile(file, changed);
  };
}
