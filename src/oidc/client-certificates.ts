// Where a request's client certificate comes from (RFC 8705): the TLS connection when Postern
// serves HTTPS itself, or a header set by a TLS-terminating proxy, believed only when the
// connection comes from one of the configured proxy addresses.
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { certificateThumbprint, chainsToTrustedCa, parseCertificate } from '../domain/certificates.ts';
import { isAddressAllowed, parseNetworks, type Network } from '../domain/networks.ts';

export interface PresentedCertificate {
  cert: X509Certificate;
  /** x5t#S256 (RFC 8705 §3.1). */
  thumbprint: string;
  /** Issued by one of the CAs of TLS_CLIENT_CA_FILE and valid now (what tls_client_auth needs). */
  trusted: boolean;
}

export interface ClientCertificateSettings {
  /** The header a TLS-terminating proxy puts the client certificate in (lower case). */
  header: string | undefined;
  /** Addresses of the proxies trusted to set it (CIDR). */
  proxies: readonly string[];
}

export class ClientCertificates {
  #header: string | undefined;
  #proxies: Network[];
  #authorities: readonly X509Certificate[];
  #byConnection = new WeakMap<object, PresentedCertificate | null>();
  #byRequest = new WeakMap<IncomingMessage, PresentedCertificate | null>();

  constructor(settings: ClientCertificateSettings, authorities: readonly X509Certificate[] = []) {
    this.#header = settings.header?.toLowerCase();
    this.#proxies = parseNetworks(settings.proxies);
    this.#authorities = authorities;
  }

  /** The CAs whose certificates tls_client_auth accepts (replaced when the CA file changes). */
  setAuthorities(authorities: readonly X509Certificate[]): void {
    this.#authorities = authorities;
    this.#byConnection = new WeakMap();
    this.#byRequest = new WeakMap();
  }

  get hasAuthorities(): boolean {
    return this.#authorities.length > 0;
  }

  /**
   * The client certificate of this request, if it has one: from a configured proxy, the one it
   * forwards (its own connection certificate is the proxy's); otherwise the connection's.
   */
  fromRequest(req: IncomingMessage): PresentedCertificate | undefined {
    // The TCP peer, never X-Forwarded-For: only the proxy itself may vouch for a certificate.
    if (this.#header && this.#proxies.length && isAddressAllowed(req.socket.remoteAddress, this.#proxies)) {
      let known = this.#byRequest.get(req);
      if (known === undefined) {
        known = this.#fromProxyHeader(req);
        this.#byRequest.set(req, known);
      }
      return known ?? undefined;
    }
    const socket = req.socket;
    if (!(socket instanceof TLSSocket)) return undefined;
    let known = this.#byConnection.get(socket);
    if (known === undefined) {
      known = this.#fromConnection(socket);
      this.#byConnection.set(socket, known);
    }
    return known ?? undefined;
  }

  #fromConnection(socket: TLSSocket): PresentedCertificate | null {
    const cert = socket.getPeerX509Certificate();
    if (!cert) return null;
    // TLS verified the chain when the connection opened. It is checked again against the CAs
    // of now: a CA taken out of TLS_CLIENT_CA_FILE must stop counting on connections that stay
    // open (the cache is emptied when the file changes). Without the file, TLS used the
    // system's public CAs, which prove nothing here.
    let trusted = false;
    if (socket.authorized && this.hasAuthorities) {
      // Stryker disable next-line ArrayDeclaration: a value that is not a CA certificate is never an issuer (chainsToTrustedCa).
      const intermediates: X509Certificate[] = [];
      // Stryker disable next-line OptionalChaining: there is a peer certificate here (checked above).
      let link = socket.getPeerCertificate(true)?.issuerCertificate;
      // The chain TLS built ends at a self-issued CA (its issuerCertificate is itself), well within
      // five links; the bound and the checks of `link` only guard against a surprise, and a CA
      // collected twice changes nothing (chainsToTrustedCa looks for the issuer among them).
      // Stryker disable next-line LogicalOperator,OptionalChaining,ConditionalExpression,EqualityOperator,AssignmentOperator: see above.
      for (let depth = 0; link?.raw && depth < 5; depth += 1) {
        intermediates.push(new X509Certificate(link.raw));
        // Stryker disable next-line ConditionalExpression,EqualityOperator: see above (with one intermediate, stopping after it is the same).
        if (link.issuerCertificate === link) break;
        link = link.issuerCertificate;
      }
      trusted = chainsToTrustedCa(cert, intermediates, this.#authorities);
    }
    return { cert, thumbprint: certificateThumbprint(cert), trusted };
  }

  #fromProxyHeader(req: IncomingMessage): PresentedCertificate | null {
    const value = req.headers[this.#header!];
    // Node joins a repeated custom header into one string, and an empty one is no certificate.
    // Stryker disable next-line LogicalOperator,ConditionalExpression: see above.
    if (typeof value !== 'string' || !value) return null;
    const cert = parseCertificate(value);
    if (!cert) return null;
    // Stryker disable next-line ArrayDeclaration: a value that is not a CA certificate is never an issuer (chainsToTrustedCa).
    return { cert, thumbprint: certificateThumbprint(cert), trusted: chainsToTrustedCa(cert, [], this.#authorities) };
  }
}
