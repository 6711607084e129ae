import { readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RegistryIssuer } from "../../schemas/tokens.js";
import type { TargetEngine } from "../../target/engine.js";
import { stateFilePath } from "../../target/store.js";
import {
  makeIssuer,
  mintCredential,
  mintFrame,
  mintRegistry,
  registryEntry,
  type TestIssuer,
} from "../helpers/issuer.js";
import { engineSetup, eventsOf, holder, issuer, START_MS, TID } from "./target-engine-setup.js";

/** Issuer key rotation at the target: keys learned from a registry's `issuers`, persisted, dropped. */

const asIssuer = (i: TestIssuer): RegistryIssuer => ({ kid: i.key.kid, x: i.key.publicKeyB64 });

function registry(signer: TestIssuer, version: number, issuers?: RegistryIssuer[]): Buffer {
  return Buffer.from(
    mintRegistry(signer, TID, { version, slots: [registryEntry("slot-1")], ...(issuers ? { issuers } : {}) }),
  );
}

let seq = 1000;
/** A stored-key frame whose credential `signer` issued (or the credential token given, again). */
function frameBy(engine: TargetEngine, signer: TestIssuer, term = "term-1", credential?: string): Buffer {
  const cred = credential ?? mintCredential(signer, { holder: holder.publicKeyB64, tids: [TID], term });
  seq += 1;
  return Buffer.from(
    mintFrame(holder, { v: 1, tid: TID, slot: "slot-1", term, nonce: engine.challenge().nonce, seq, cred }),
  );
}

describe("issuer keys learned from the registry", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START_MS);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("trusts a key the registry lists: its credentials open, and the state file holds it before use", () => {
    const s = engineSetup();
    const engine = s.open();
    const rotated = makeIssuer();
    expect(engine.handleFrame(frameBy(engine, rotated), false, "term-1")).toMatchObject({
      ok: false,
      reason: "unknown_issuer",
    });
    engine.handleRegistry(registry(issuer, 2, [asIssuer(issuer), asIssuer(rotated)]));
    expect(engine.stats().registry_version).toBe(2);
    const file = JSON.parse(readFileSync(stateFilePath(s.config.state_dir, TID), "utf8")) as {
      issuers?: unknown;
    };
    expect(file.issuers).toEqual([asIssuer(issuer), asIssuer(rotated)]);
    expect(engine.handleFrame(frameBy(engine, rotated, "term-2"), false, "term-2").ok).toBe(true);
    engine.close();
  });

  it("keeps a learned key across a restart", () => {
    const s = engineSetup();
    const rotated = makeIssuer();
    const first = s.open();
    first.handleRegistry(registry(issuer, 2, [asIssuer(issuer), asIssuer(rotated)]));
    first.close();
    const again = s.open();
    expect(again.handleFrame(frameBy(again, rotated), false, "term-1").ok).toBe(true);
    // And a registry the learned key signed is accepted.
    again.handleRegistry(registry(rotated, 3, [asIssuer(rotated)]));
    expect(again.stats().registry_version).toBe(3);
    again.close();
  });

  it("refuses a whole registry that lists a kid which is not its key's thumbprint", () => {
    const s = engineSetup();
    const engine = s.open();
    const rotated = makeIssuer();
    const stranger = makeIssuer();
    const from = s.rec.events.length;
    engine.handleRegistry(registry(issuer, 2, [{ kid: rotated.key.kid, x: stranger.key.publicKeyB64 }]));
    expect(engine.stats().registry_version).toBe(1);
    expect(s.rec.events.slice(from)).toEqual([
      { v: 1, tid: TID, ts: START_MS, type: "registry_refused", reason: "schema_violation" },
    ]);
    for (const signer of [rotated, stranger])
      expect(engine.handleFrame(frameBy(engine, signer), false, "term-1")).toMatchObject({
        reason: "unknown_issuer",
      });
    engine.close();
  });

  it("stops trusting a learned key the next registry leaves out, but never a config key", () => {
    const s = engineSetup();
    const engine = s.open();
    const rotated = makeIssuer();
    engine.handleRegistry(registry(issuer, 2, [asIssuer(issuer), asIssuer(rotated)]));
    // The config's key retired: the registry lists only the new one (and is signed by it).
    engine.handleRegistry(registry(rotated, 3, [asIssuer(rotated)]));
    expect(engine.handleFrame(frameBy(engine, issuer), false, "term-1").ok).toBe(true);
    // The new key retired in turn: learned, so no longer trusted, even for a credential verified before.
    const cred = mintCredential(rotated, { holder: holder.publicKeyB64, tids: [TID], term: "term-2" });
    expect(engine.handleFrame(frameBy(engine, rotated, "term-2", cred), false, "term-2").ok).toBe(true);
    const third = makeIssuer();
    engine.handleRegistry(registry(rotated, 4, [asIssuer(third)]));
    expect(engine.handleFrame(frameBy(engine, rotated, "term-2", cred), false, "term-2")).toMatchObject({
      ok: false,
      reason: "unknown_issuer",
    });
    expect(engine.handleFrame(frameBy(engine, third, "term-3"), false, "term-3").ok).toBe(true);
    engine.close();
  });

  it("keeps the learned keys when a registry lists no issuers", () => {
    const s = engineSetup();
    const engine = s.open();
    const rotated = makeIssuer();
    engine.handleRegistry(registry(issuer, 2, [asIssuer(rotated)]));
    engine.handleRegistry(registry(issuer, 3));
    expect(engine.stats().registry_version).toBe(3);
    expect(engine.handleFrame(frameBy(engine, rotated), false, "term-1").ok).toBe(true);
    expect(eventsOf(s.rec, "registry_refused")).toEqual([]);
    engine.close();
  });
});
