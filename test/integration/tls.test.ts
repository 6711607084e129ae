import { X509Certificate } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { describe, expect, it, onTestFinished } from "vitest";
import { runTerminal } from "../../cli/terminal.js";
import { SparekeyError } from "../../common/errors.js";
import { silentLogger } from "../../common/log.js";
import { connectMqtt } from "../../common/mqtt.js";
import { fingerprint256 } from "../../gateway/tls.js";
import { addGrant, addTerminal, addUser } from "../../keyserver/admin/accounts.js";
import { writeFob } from "../../keyserver/admin/fob.js";
import { createSlot, pairTarget } from "../../keyserver/admin/targets.js";
import type { TargetState } from "../../schemas/messages.js";
import { Topics } from "../../schemas/topics.js";
import { Target } from "../../target/target.js";
import { download } from "../../terminal/download.js";
import { readProfile, terminalPaths } from "../../terminal/files.js";
import { login } from "../../terminal/login.js";
import { openSession } from "../../terminal/session.js";
import { startUse } from "../../terminal/use.js";
import { adminContext, observeTarget, runAdmin, startTestGateway } from "../helpers/gateway.js";
import { nextMessage, tempDir } from "../helpers/wait.js";

const logger = silentLogger();
const PASSWORD = "alice-password-0123";

/** A gateway whose certificate names localhost first, so the URLs it hands out resolve here. */
function tlsGateway() {
  return startTestGateway({ tls_names: ["localhost"] });
}

async function withAlice(gateway: Awaited<ReturnType<typeof tlsGateway>>, serial = "PHONE-ALICE") {
  await runAdmin(gateway, addUser, { user: "alice", password: PASSWORD });
  await runAdmin(gateway, addTerminal, { serial, user: "alice" });
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SparekeyError);
  expect((err as SparekeyError).code).toBe(code);
}

function sink(): { write(t: string): void; text(): string } {
  let text = "";
  return {
    write: (t: string) => {
      text += t;
    },
    text: () => text,
  };
}

describe("TLS by default", () => {
  it("pair (with a client certificate), target over mqtts, phone login with the CA, download and open the door", async () => {
    const gateway = await tlsGateway();
    expect(gateway.tlsUrl).toMatch(/^mqtts:\/\/localhost:[0-9]+$/);
    expect(gateway.wssUrl).toMatch(/^wss:\/\/localhost:[0-9]+\/mqtt$/);
    await withAlice(gateway);
    const root = tempDir("sparekey-tls-story-");
    const dataDir = gateway.state.dataDir;
    const config = await runAdmin(gateway, pairTarget, {
      tid: "front-door",
      out: join(root, "front-door.json"),
      dataDir,
      clientCert: true,
      stateDir: join(root, "target-state"),
      periodMs: 150,
    });
    // The target proves its tid with a certificate too (the broker checks CN = client id).
    expect(new X509Certificate(config.client_cert_pem ?? "").subject).toBe("CN=front-door");
    // The file holds the gateway's real TLS URL and its CA, not a default port.
    expect({ url: config.broker_url, ca: config.ca_pem }).toEqual({ url: gateway.tlsUrl, ca: gateway.caPem });
    expect(statSync(join(root, "front-door.json")).mode & 0o777).toBe(0o600);
    await runAdmin(gateway, createSlot, { slot: "alice-key", tids: ["front-door"] });
    await runAdmin(gateway, addGrant, { slot: "alice-key", user: "alice", mode: "stored" });
    await gateway.keyserver.publishNow();

    const watch = await observeTarget(gateway, "front-door");
    let at = watch.mark();
    const target = new Target({ config, logger });
    await target.start();
    onTestFinished(() => target.stop());
    await watch.event(at, (e) => e.type === "registry_applied", "the target's first registry over mqtts");

    const phoneDir = join(root, "phone");
    const caFile = join(dataDir, "tls", "ca.pem");
    const result = await login({
      dir: phoneDir,
      brokerUrl: gateway.tlsUrl,
      caPem: readFileSync(caFile, "utf8"),
      serial: "PHONE-ALICE",
      user: "alice",
      password: PASSWORD,
      logger,
    });
    expect(result.tls).toEqual({ caSha256: fingerprint256(gateway.caPem), trust: "given" });
    expect(statSync(terminalPaths(phoneDir).profile).mode & 0o777).toBe(0o600);

    const cred = await download({ dir: phoneDir, target: "front-door", logger });
    expect({ slot: cred.slot, tids: cred.tids }).toEqual({ slot: "alice-key", tids: ["front-door"] });
    at = watch.mark();
    const phone = await startUse({ dir: phoneDir, tid: "front-door", logger });
    onTestFinished(() => phone.close());
    const opened = await watch.state(
      at,
      (s: TargetState) => s.state === "available" && s.term === "PHONE-ALICE",
      "the phone to open the door over mqtts",
    );
    expect({ state: opened.state, slot: opened.slot, mode: opened.mode }).toEqual({
      state: "available",
      slot: "alice-key",
      mode: "stored",
    });
  });

  it("a fob file gets the TLS URL and the CA", async () => {
    const gateway = await tlsGateway();
    const root = tempDir("sparekey-tls-fob-");
    await runAdmin(gateway, pairTarget, {
      tid: "gate",
      out: join(root, "gate.json"),
      dataDir: gateway.state.dataDir,
    });
    await runAdmin(gateway, createSlot, { slot: "gate-key", tids: ["gate"] });
    await writeFob(adminContext(gateway), {
      slot: "gate-key",
      fob: "FOB-1",
      out: join(root, "fob.json"),
      dataDir: gateway.state.dataDir,
    });
    const fob: unknown = JSON.parse(readFileSync(join(root, "fob.json"), "utf8"));
    expect(fob).toMatchObject({ broker_url: gateway.tlsUrl, ca_pem: gateway.caPem });
  });

  it("a client without the gateway's CA is refused at the handshake", async () => {
    const gateway = await tlsGateway();
    await withAlice(gateway);
    const port = Number(new URL(gateway.tlsUrl).port);
    const outcome = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: "127.0.0.1", port, servername: "localhost" });
      socket.once("secureConnect", () => {
        socket.destroy();
        resolve("connected");
      });
      socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    expect(outcome).toBe("SELF_SIGNED_CERT_IN_CHAIN");
    // The login (with the CA of another gateway) is refused with a clear code, and writes nothing.
    const other = await tlsGateway();
    const dir = tempDir("sparekey-tls-phone-");
    await expectCode(
      login({
        dir,
        brokerUrl: gateway.tlsUrl,
        caPem: other.caPem,
        serial: "PHONE-ALICE",
        user: "alice",
        password: PASSWORD,
        logger,
      }),
      "tls_untrusted",
    );
    expect(() => readProfile(dir)).toThrow();
  });

  it("a terminal trusts the CA on first use, pins it, and refuses another CA later with tls_pin_mismatch", async () => {
    const gateway = await tlsGateway();
    await withAlice(gateway);
    const dir = tempDir("sparekey-tls-phone-");
    const result = await login({
      dir,
      brokerUrl: gateway.tlsUrl,
      serial: "PHONE-ALICE",
      user: "alice",
      password: PASSWORD,
      logger,
    });
    expect(result.tls).toEqual({ caSha256: fingerprint256(gateway.caPem), trust: "first_use" });
    expect(readProfile(dir).tls).toEqual({
      ca_pem: gateway.caPem,
      ca_sha256: fingerprint256(gateway.caPem),
      trust: "first_use",
    });
    // The pinned CA works for later connections.
    const session = await openSession({ dir, logger });
    await session.close();

    // Another gateway (its own CA) answers at the profile's address: refused.
    const impostor = await tlsGateway();
    await withAlice(impostor);
    const profilePath = terminalPaths(dir).profile;
    const profile = readProfile(dir);
    writeFileSync(profilePath, JSON.stringify({ ...profile, broker_url: impostor.tlsUrl }));
    await expectCode(openSession({ dir, logger }), "tls_pin_mismatch");
  });

  it("a terminal over WSS is held to the same ACL: it cannot publish another terminal's status", async () => {
    const gateway = await tlsGateway();
    await withAlice(gateway, "PHONE-A");
    await runAdmin(gateway, addTerminal, { serial: "PHONE-B", user: "alice" });
    const topics = new Topics();
    const b = await connectMqtt({
      url: gateway.wssUrl,
      tls: { ca: gateway.caPem },
      clientId: "PHONE-B",
      username: "alice",
      password: PASSWORD,
      reconnectPeriod: 0,
    });
    onTestFinished(() => b.endAsync(true));
    const observer = await connectMqtt({
      url: gateway.url,
      clientId: "keyserver-observer",
      username: "keyserver",
      password: gateway.state.secret,
      reconnectPeriod: 0,
    });
    onTestFinished(() => observer.endAsync(true));
    const aStatus = topics.message(
      "terminalStatus",
      { term: "PHONE-A" },
      { v: 1, state: "online", epoch: 1 },
    );
    const bStatus = topics.message(
      "terminalStatus",
      { term: "PHONE-B" },
      { v: 1, state: "online", epoch: 7 },
    );
    await observer.subscribeAsync([aStatus.topic, bStatus.topic], { qos: 1 });
    const seen: string[] = [];
    observer.on("message", (topic) => seen.push(topic));

    // Its own status goes through (over WSS, with the same login as over TCP)...
    const own = nextMessage(observer, bStatus.topic);
    await b.publishAsync(bStatus.topic, bStatus.payload, { qos: 1, retain: bStatus.retain });
    expect(JSON.parse((await own).payload.toString())).toEqual({ v: 1, state: "online", epoch: 7 });
    // ...another terminal's is refused: aedes drops the connection, and nothing reaches subscribers.
    const closed = new Promise<void>((resolve) => b.once("close", () => resolve()));
    b.publish(aStatus.topic, aStatus.payload, { qos: 1, retain: aStatus.retain });
    await closed;
    // A barrier: a later genuine message arrives, and the forged one never did.
    const c = await connectMqtt({
      url: gateway.wssUrl,
      tls: { ca: gateway.caPem },
      clientId: "PHONE-B",
      username: "alice",
      password: PASSWORD,
      reconnectPeriod: 0,
    });
    onTestFinished(() => c.endAsync(true));
    const barrier = nextMessage(observer, bStatus.topic, { accept: (m) => m.payload.includes('"epoch":8') });
    await c.publishAsync(bStatus.topic, JSON.stringify({ v: 1, state: "online", epoch: 8 }), {
      qos: 1,
      retain: true,
    });
    await barrier;
    expect(seen.filter((t) => t === aStatus.topic)).toEqual([]);
  });

  it("CLI login takes --ca FILE, and without it prints the pinned CA's fingerprint", async () => {
    const gateway = await tlsGateway();
    await withAlice(gateway);
    await runAdmin(gateway, addTerminal, { serial: "PHONE-TWO", user: "alice" });
    const fp = fingerprint256(gateway.caPem);
    const env = { SPAREKEY_PASSWORD: PASSWORD };
    const base = ["login", "--broker", gateway.tlsUrl, "--user", "alice"];

    const given = { out: sink(), err: sink() };
    const caFile = join(gateway.state.dataDir, "tls", "ca.pem");
    const dirA = tempDir("sparekey-tls-phone-");
    const codeA = await runTerminal([...base, "--serial", "PHONE-ALICE", "--ca", caFile, "--dir", dirA], {
      stdout: given.out,
      stderr: given.err,
      env,
      logger,
    });
    expect({ code: codeA, err: given.err.text() }).toEqual({ code: 0, err: "" });
    expect(given.out.text()).toContain(`broker verified with the given CA, SHA-256 ${fp}\n`);

    const tofu = { out: sink(), err: sink() };
    const dirB = tempDir("sparekey-tls-phone-");
    const codeB = await runTerminal([...base, "--serial", "PHONE-TWO", "--dir", dirB], {
      stdout: tofu.out,
      stderr: tofu.err,
      env,
      logger,
    });
    expect({ code: codeB, err: tofu.err.text() }).toEqual({ code: 0, err: "" });
    expect(tofu.out.text()).toContain(`trusting the broker's CA on first use: SHA-256 ${fp}\n`);
  });
});
