import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it, onTestFinished } from "vitest";
import type { Authenticator, Principal } from "../../broker/principal.js";
import { startBroker } from "../../broker/server.js";
import { SparekeyError } from "../../common/errors.js";
import { silentLogger } from "../../common/log.js";
import { connectMqtt } from "../../common/mqtt.js";
import { GATEWAY_DEFAULTS, LOCAL_EPHEMERAL, startGateway } from "../../gateway/gateway.js";
import { ensureTlsMaterial, issueClientCert, tlsNames } from "../../gateway/tls.js";
import { tempDataDir } from "../helpers/keyserver.js";
import { tempDir } from "../helpers/wait.js";

/** An authenticator that records the source address of each login and knows two targets. */
function recordingAuthenticator(sources: Array<string | undefined>): Authenticator {
  const table: Record<string, string> = { "door-1": "secret-1", "door-2": "secret-2" };
  return {
    async authenticate(clientId, _username, password, source): Promise<Principal | undefined> {
      sources.push(source);
      return table[clientId] === password?.toString() ? { role: "target", id: clientId } : undefined;
    },
  };
}

async function tlsBroker(sources: Array<string | undefined>) {
  const dir = tempDir("sparekey-broker-tls-");
  const material = await ensureTlsMaterial(dir, { names: tlsNames([]) });
  const broker = await startBroker({
    port: 0,
    logger: silentLogger(),
    authenticator: recordingAuthenticator(sources),
    tls: { ...material, host: "127.0.0.1", port: 0, wssPort: 0 },
  });
  onTestFinished(() => broker.close());
  return { broker, dir, caPem: material.caPem };
}

/** The CONNACK refusal code, or "connected". */
async function connectOutcome(o: Parameters<typeof connectMqtt>[0]): Promise<number | "connected"> {
  try {
    const c = await connectMqtt({ ...o, reconnectPeriod: 0 });
    await c.endAsync(true);
    return "connected";
  } catch (err) {
    return (err as { code: number }).code;
  }
}

function externalIPv4(): string | undefined {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  return undefined;
}

describe("broker listeners", () => {
  it("MQTT over TLS and over WSS hand the peer's address to the authenticator", async () => {
    const sources: Array<string | undefined> = [];
    const { broker, caPem } = await tlsBroker(sources);
    for (const url of [broker.tlsUrl, broker.wssUrl]) {
      expect(
        await connectOutcome({
          url: url ?? "",
          tls: { ca: caPem },
          clientId: "door-1",
          username: "door-1",
          password: "secret-1",
        }),
      ).toBe("connected");
    }
    expect(sources.map((s) => s?.replace(/^::ffff:/, ""))).toEqual(["127.0.0.1", "127.0.0.1"]);
  });

  it("a client certificate must name the client id it connects as; the secret is still required", async () => {
    const { broker, dir, caPem } = await tlsBroker([]);
    const cert = await issueClientCert(dir, "door-1");
    const tls = { ca: caPem, cert: cert.certPem, key: cert.keyPem };
    const url = broker.tlsUrl ?? "";
    expect(
      await connectOutcome({ url, tls, clientId: "door-1", username: "door-1", password: "secret-1" }),
    ).toBe("connected");
    // door-1's certificate with door-2's own (right) secret: refused, not authorised.
    expect(
      await connectOutcome({ url, tls, clientId: "door-2", username: "door-2", password: "secret-2" }),
    ).toBe(5);
    // The certificate does not replace the secret.
    expect(
      await connectOutcome({ url, tls, clientId: "door-1", username: "door-1", password: "wrong" }),
    ).toBe(4);
  });

  it("a plain listener beyond loopback is refused at config validation without allow_plain_remote", async () => {
    const err = await startGateway({
      config: {
        ...GATEWAY_DEFAULTS,
        ...LOCAL_EPHEMERAL,
        data_dir: join(tempDir("sparekey-plain-"), "data"),
        plain_host: "0.0.0.0",
      },
      logger: silentLogger(),
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SparekeyError);
    expect((err as SparekeyError).code).toBe("config_invalid");
  });

  it("with allow_plain_remote it listens beyond loopback, accepts another address, and logs a warning", async () => {
    const external = externalIPv4();
    expect(external, "this test needs a non-loopback IPv4 address on this machine").toBeDefined();
    const lines: Array<{ level: number; msg: string }> = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const gateway = await startGateway({
      config: {
        ...GATEWAY_DEFAULTS,
        ...LOCAL_EPHEMERAL,
        data_dir: await tempDataDir(),
        plain_host: "0.0.0.0",
        allow_plain_remote: true,
      },
      logger,
    });
    onTestFinished(() => gateway.close());
    expect(lines.map((l) => l.msg)).toContain(
      "plain MQTT listener beyond loopback: passwords and frames cross the network unencrypted",
    );
    const port = new URL(gateway.url).port;
    const client = await connectMqtt({
      url: `mqtt://${external}:${port}`,
      clientId: "keyserver-remote",
      username: "keyserver",
      password: gateway.state.secret,
      reconnectPeriod: 0,
    });
    await client.endAsync();
  });
});
