import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { connect, type DetailedPeerCertificate } from "node:tls";
import { SparekeyError } from "../common/errors.js";

/** mqtts:// and wss:// brokers present a certificate; mqtt://, tcp:// and ws:// do not. */
export function isTlsUrl(url: string): boolean {
  return /^(mqtts|wss):\/\//.test(url);
}

/** OpenSSL's and node's codes for a certificate the client cannot accept. */
const VERIFY_CODES = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Did the connection fail because the broker's certificate was refused (anywhere in the cause chain)? */
export function isCertificateRefusal(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && VERIFY_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export interface BrokerCa {
  readonly caPem: string;
  /** Colon-separated upper-case hex, as `openssl x509 -fingerprint -sha256` prints it. */
  readonly caSha256: string;
}

/** The last certificate of the chain the broker sent: its CA, when it sends one (the gateway does). */
function rootOf(cert: DetailedPeerCertificate): DetailedPeerCertificate {
  let c = cert;
  for (let i = 0; i < 10 && c.issuerCertificate && c.issuerCertificate !== c; i++) {
    if (c.issuerCertificate.fingerprint256 === c.fingerprint256) break;
    c = c.issuerCertificate;
  }
  return c;
}

/**
 * Trust on first use: one TLS handshake that accepts any certificate, to read the CA the broker
 * presents. Nothing is sent over this connection; the login that follows verifies the broker
 * against this CA as every later connection will.
 */
export function fetchBrokerCa(url: string, timeoutMs: number): Promise<BrokerCa> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(u.port || (u.protocol === "wss:" ? 443 : 8883));
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port,
      ...(isIP(host) === 0 ? { servername: host } : {}),
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new SparekeyError("timeout", `no TLS handshake with ${url} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      const root = rootOf(socket.getPeerCertificate(true));
      socket.destroy();
      const pem = `-----BEGIN CERTIFICATE-----\n${
        root.raw
          .toString("base64")
          .match(/.{1,64}/g)
          ?.join("\n") ?? ""
      }\n-----END CERTIFICATE-----\n`;
      const cert = new X509Certificate(pem);
      if (!cert.ca) {
        reject(
          new SparekeyError(
            "tls_untrusted",
            `the broker at ${url} did not send a CA certificate; pass the gateway's ca.pem with --ca`,
          ),
        );
        return;
      }
      resolve({ caPem: pem, caSha256: cert.fingerprint256 });
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(new SparekeyError("not_connected", `cannot reach ${url}: ${err.message}`, { cause: err }));
    });
  });
}
