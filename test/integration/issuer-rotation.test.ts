import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { signToken } from "../../common/jws.js";
import { silentLogger } from "../../common/log.js";
import type { RunningGateway } from "../../gateway/gateway.js";
import type { AdminContext } from "../../keyserver/admin/context.js";
import { writeFob } from "../../keyserver/admin/fob.js";
import { listIssuers, retireIssuer, rotateIssuer } from "../../keyserver/admin/issuer.js";
import { createSlot, pairTarget, rotateTargetSecret } from "../../keyserver/admin/targets.js";
import { openKeyServerState } from "../../keyserver/state.js";
import type { TargetConfig } from "../../schemas/config.js";
import type { TargetEvent } from "../../schemas/messages.js";
import { TokenType } from "../../schemas/tokens.js";
import { Target } from "../../target/target.js";
import { startFobUse } from "../../terminal/use.js";
import {
  connectAsKeyserver,
  observeTarget,
  runAdmin,
  startTestGateway,
  type TargetObserver,
} from "../helpers/gateway.js";
import { makeIssuer } from "../helpers/issuer.js";
import { tempDir } from "../helpers/wait.js";

const TID = "front-door";
const logger = silentLogger();

/** The admin CLI's view of the data dir: its own store connection and issuer file reader, as another process. */
function adminProcess(gateway: RunningGateway): AdminContext {
  const state = openKeyServerState(gateway.state.dataDir);
  onTestFinished(() => state.close());
  return { store: state.store, issuer: state.issuer, actor: "admin", now: Date.now };
}

async function startTarget(config: TargetConfig): Promise<Target> {
  const target = new Target({ config, logger });
  await target.start();
  onTestFinished(() => target.stop());
  return target;
}

/** The registry version the key server holds for the target. */
async function registryVersion(gateway: RunningGateway): Promise<number> {
  const record = (await gateway.state.store.listTargets()).find((t) => t.tid === TID);
  if (!record) throw new Error(`${TID} is not paired`);
  return record.registry_version;
}

const applied = (version: number) => (e: TargetEvent) =>
  e.type === "registry_applied" && e.version === version;

/** Run a fob's frames until the target says what it makes of them: a session, or a refusal reason. */
async function tryFob(watch: TargetObserver, fobFile: string, fob: string): Promise<string> {
  const at = watch.mark();
  const use = await startFobUse({ fobFile, tid: TID, logger });
  try {
    const e = await watch.event(
      at,
      (x) => (x.type === "auth_established" || x.type === "auth_refused") && x.term === fob,
      `${fob}'s verdict`,
    );
    return e.type === "auth_refused" ? (e.reason ?? "refused") : "opened";
  } finally {
    await use.close();
  }
}

function credentialKid(fobFile: string): string {
  const fob = JSON.parse(readFileSync(fobFile, "utf8")) as { credential: string };
  const head = JSON.parse(Buffer.from(fob.credential.split(".")[0] ?? "", "base64url").toString()) as {
    kid: string;
  };
  return head.kid;
}

describe("issuer key rotation over the real gateway", () => {
  it("old and new keys open during the overlap; a retired key stops opening once no config or registry lists it", async () => {
    const gateway = await startTestGateway();
    const root = tempDir("sparekey-rotate-");
    const admin = adminProcess(gateway);
    const first = gateway.state.issuer.signingKey.kid;
    const pairing = { tid: TID, brokerUrl: gateway.url, stateDir: join(root, "state"), periodMs: 150 };
    const config = await runAdmin(gateway, pairTarget, { ...pairing, out: join(root, "target.json") });
    expect(config.issuer_keys.map((k) => k.kid)).toEqual([first]);
    for (const slot of ["s1", "s2", "s3"]) await runAdmin(gateway, createSlot, { slot, tids: [TID] });
    const fobFile = (n: number) => join(root, `FOB-${n}.json`);
    const fob = (n: number) =>
      writeFob(admin, { slot: `s${n}`, fob: `FOB-${n}`, out: fobFile(n), brokerUrl: gateway.url });
    await fob(1);
    expect(credentialKid(fobFile(1))).toBe(first);
    await gateway.keyserver.publishNow();
    const watch = await observeTarget(gateway, TID);
    let at = watch.mark();
    let target = await startTarget(config);
    await watch.event(at, applied(await registryVersion(gateway)), "the first registry");

    // Rotate from another process: the running key server reloads the key file and republishes.
    at = watch.mark();
    const second = (await rotateIssuer(admin)).kid;
    expect(second).not.toBe(first);
    await watch.event(at, applied(await registryVersion(gateway)), "the registry listing the new key");
    expect(gateway.state.issuer.signingKey.kid).toBe(second);
    expect(await tryFob(watch, fobFile(1), "FOB-1")).toBe("opened");
    await fob(2);
    expect(credentialKid(fobFile(2))).toBe(second);
    expect(await tryFob(watch, fobFile(2), "FOB-2")).toBe("opened");

    // A restarted target keeps the key it learned (the retained registry it gets again is not newer).
    await target.stop();
    target = await startTarget(config);
    expect(await tryFob(watch, fobFile(2), "FOB-2")).toBe("opened");

    // A registry that names a key by another key's kid is refused whole.
    at = watch.mark();
    const ks = await connectAsKeyserver(gateway, "forger");
    const forged = signToken(
      TokenType.registry,
      {
        v: 1,
        tid: TID,
        version: 1_000_000,
        slots: [],
        issuers: [{ kid: second, x: makeIssuer().key.publicKeyB64 }],
        iat: Math.floor(Date.now() / 1000),
      },
      gateway.state.issuer.listSigningKey,
    );
    await watch.topics.publish(ks, "registry", { tid: TID }, forged);
    const refusal = await watch.event(at, (e) => e.type === "registry_refused", "the forged registry");
    expect(refusal).toMatchObject({ type: "registry_refused", reason: "schema_violation" });
    expect(await tryFob(watch, fobFile(2), "FOB-2")).toBe("opened");

    // A third key, then the second retired: the target learned it, so it stops trusting it.
    await rotateIssuer(admin);
    at = watch.mark();
    await retireIssuer(admin, second);
    await watch.event(at, applied(await registryVersion(gateway)), "the registry without the second key");
    expect(await tryFob(watch, fobFile(2), "FOB-2")).toBe("unknown_issuer");
    // The first key is in the target's config: still trusted, until the target is re-paired.
    expect(await tryFob(watch, fobFile(1), "FOB-1")).toBe("opened");

    at = watch.mark();
    await retireIssuer(admin, first);
    await watch.event(at, applied(await registryVersion(gateway)), "the registry without the first key");
    expect(
      listIssuers(admin).map((k) => [k.kid === first || k.kid === second, k.active, k.retired !== undefined]),
    ).toEqual([
      [true, false, true],
      [true, false, true],
      [false, true, false],
    ]);
    await target.stop();
    const repaired = await runAdmin(gateway, rotateTargetSecret, {
      ...pairing,
      out: join(root, "target-2.json"),
    });
    expect(repaired.issuer_keys.map((k) => k.kid)).toEqual([gateway.state.issuer.signingKey.kid]);
    at = watch.mark();
    await startTarget(repaired);
    await watch.event(at, applied(await registryVersion(gateway)), "the re-paired target's registry");
    expect(await tryFob(watch, fobFile(1), "FOB-1")).toBe("unknown_issuer");
    await fob(3);
    expect(await tryFob(watch, fobFile(3), "FOB-3")).toBe("opened");
    expect(watch.invalid).toEqual([]);
  });
});
