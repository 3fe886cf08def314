// A probe of this machine's server for container health checks (bin/healthcheck.js): it reads the
// same settings as the server (PORT, HOST, TLS_CERT_FILE), so it follows them instead of assuming
// port 3000 and plain http. Over HTTPS it expects exactly the certificate of TLS_CERT_FILE: that
// holds whatever CA issued it (public, private, self-signed) and whatever name it carries.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { pemCertificates } from '../domain/certificates.ts';

/** Where this machine's server listens (config.ts readListenerSettings). */
export interface ListenerSettings {
  host: string;
  port: number;
  tls: { certFile: string; keyFile: string } | undefined;
  issuer: string;
}

export interface ProbeTarget {
  url: string;
  /** SHA-256 fingerprint of the certificate the listener must present (HTTPS only). */
  fingerprint: string | undefined;
  /** TLS server name (SNI): the issuer's host name, unless it is an address. */
  serverName: string | undefined;
}

/** A wildcard listener is reached on loopback; a specific address, on itself. */
function connectHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '[::1]';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

export function probeTarget(settings: ListenerSettings, path: string): ProbeTarget {
  const scheme = settings.tls ? 'https' : 'http';
  let fingerprint: string | undefined;
  if (settings.tls) {
    const pem = pemCertificates(fs.readFileSync(settings.tls.certFile, 'utf8'))[0];
    if (!pem) throw new Error(`TLS_CERT_FILE (${settings.tls.certFile}) holds no certificate`);
    fingerprint = new X509Certificate(pem).fingerprint256;
  }
  const issuerHost = URL.parse(settings.issuer)?.hostname;
  const serverName = issuerHost && !/^[\d.]+$|^\[/.test(issuerHost) ? issuerHost : undefined;
  return { url: `${scheme}://${connectHost(settings.host)}:${settings.port}${path}`, fingerprint, serverName };
}

/** GETs the target; resolves with the status, or rejects with why there was none. */
export function probe(target: ProbeTarget, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const options: https.RequestOptions = { timeout: timeoutMs, headers: { 'user-agent': 'postern-healthcheck' } };
    if (target.fingerprint) {
      // Checked by hand below, against TLS_CERT_FILE, instead of against a CA.
      Object.assign(options, { rejectUnauthorized: false, servername: target.serverName });
    }
    const request = (target.fingerprint ? https : http).get(target.url, options, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('socket', (socket) => {
      if (!target.fingerprint) return;
      socket.once('secureConnect', () => {
        const presented = (socket as TLSSocket).getPeerX509Certificate()?.fingerprint256;
        if (presented !== target.fingerprint) request.destroy(new Error('the listener presented a certificate other than the one in TLS_CERT_FILE'));
      });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

/**
 * `node bin/healthcheck.js [--live]`: 0 when /readyz (or /healthz with --live) answers 200, else
 * 1 with one line saying why. `readSettings` is config.ts's readListenerSettings (bin/healthcheck.js
 * passes it: platform/ reads no configuration of its own).
 */
export async function runHealthcheck(args: string[], readSettings: () => ListenerSettings): Promise<number> {
  const unknown = args.filter((arg) => arg !== '--live');
  if (unknown.length) {
    process.stderr.write(`healthcheck: unknown argument ${unknown[0]} (usage: healthcheck [--live])\n`);
    return 2;
  }
  const path = args.includes('--live') ? '/healthz' : '/readyz';
  let target: ProbeTarget;
  try {
    target = probeTarget(readSettings(), path);
  } catch (error) {
    process.stderr.write(`healthcheck: ${(error as Error).message}\n`);
    return 1;
  }
  try {
    const status = await probe(target, 3000);
    if (status === 200) {
      process.stdout.write(`healthcheck: ${target.url} answered 200\n`);
      return 0;
    }
    process.stderr.write(`healthcheck: ${target.url} answered ${status}\n`);
  } catch (error) {
    process.stderr.write(`healthcheck: ${target.url}: ${(error as Error).message}\n`);
  }
  return 1;
}
