import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { isIP } from "node:net";
import { hostname } from "node:os";
import { connect, createServer, type TLSSocket } from "node:tls";
import { describe, expect, it, onTestFinished } from "vitest";
import {
  ensureTlsMaterial,
  issueClientCert,
  type TlsMaterial,
  tlsNames,
  tlsPaths,
} from "../../gateway/tls.js";
import { tempDir } from "../helpers/wait.js";

/** A TLS server with the material on `::` (both families), closed when the test finishes. */
async function serve(m: TlsMaterial): Promise<number> {
  const server = createServer({ cert: m.certChainPem, key: m.keyPem }, (s) => s.end());
  await new Promise<void>((resolve) => server.listen(0, "::", resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("no address");
  return address.port;
}

/** Connect as a client that trusts only `ca`: resolves with the handshake's outcome. */
function handshake(port: number, name: string, ca: string): Promise<"verified" | string> {
  const ip = isIP(name) !== 0;
  return new Promise((resolve) => {
    const socket: TLSSocket = connect({
      host: ip ? name : "127.0.0.1",
      port,
      ca,
      ...(ip ? {} : { servername: name }),
      rejectUnauthorized: true,
    });
    socket.once("secureConnect", () => {
      resolve(socket.authorized ? "verified" : String(socket.authorizationError));
      socket.destroy();
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe("gateway TLS material", () => {
  it("makes a CA and a server certificate the CA verifies for every name, with private keys 0600", async () => {
    const dir = tempDir("sparekey-tls-");
    const names = tlsNames(["door.example.test"]);
    expect(names).toEqual(["localhost", "127.0.0.1", "::1", hostname(), "door.example.test"]);
    const m = await ensureTlsMaterial(dir, { names });
    const port = await serve(m);
    for (const name of names)
      expect([name, await handshake(port, name, m.caPem)]).toEqual([name, "verified"]);
    // A name the certificate does not hold, and a client that does not know the CA, are refused.
    expect(await handshake(port, "other.example.test", m.caPem)).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
    const stranger = await ensureTlsMaterial(tempDir("sparekey-tls-"), { names });
    expect(await handshake(port, "localhost", stranger.caPem)).toBe("SELF_SIGNED_CERT_IN_CHAIN");

    const paths = tlsPaths(dir);
    expect(statSync(paths.caKey).mode & 0o777).toBe(0o600);
    expect(statSync(paths.serverKey).mode & 0o777).toBe(0o600);
    const ca = new X509Certificate(readFileSync(paths.ca));
    expect(ca.ca).toBe(true);
    const years = (Date.parse(ca.validTo) - Date.parse(ca.validFrom)) / (365 * 86_400_000);
    expect(Math.round(years)).toBe(10);
    expect(ca.publicKey.asymmetricKeyDetails).toEqual({ namedCurve: "prime256v1" });
  });

  it("reuses the files on a later start and makes only a new server certificate when the names change", async () => {
    const dir = tempDir("sparekey-tls-");
    const first = await ensureTlsMaterial(dir, { names: tlsNames([]) });
    expect(first.serverCertCreated).toBe(true);
    const again = await ensureTlsMaterial(dir, { names: tlsNames([]) });
    expect(again.serverCertCreated).toBe(false);
    expect(again.certChainPem).toBe(first.certChainPem);

    const renamed = await ensureTlsMaterial(dir, { names: tlsNames(["gate.example.test"]) });
    expect(renamed.serverCertCreated).toBe(true);
    expect(renamed.caPem).toBe(first.caPem);
    expect(renamed.caSha256).toBe(first.caSha256);
    const port = await serve(renamed);
    expect(await handshake(port, "gate.example.test", first.caPem)).toBe("verified");
  });

  it("issues a client certificate with the tid as its subject CN, signed by the gateway's CA", async () => {
    const dir = tempDir("sparekey-tls-");
    const m = await ensureTlsMaterial(dir, { names: tlsNames([]) });
    const client = await issueClientCert(dir, "door-1");
    const cert = new X509Certificate(client.certPem);
    expect(cert.subject).toBe("CN=door-1");
    expect(cert.checkIssued(new X509Certificate(m.caPem))).toBe(true);
    expect(cert.verify(new X509Certificate(m.caPem).publicKey)).toBe(true);
  });
});
