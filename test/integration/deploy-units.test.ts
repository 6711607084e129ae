import { spawnSync } from "node:child_process";
import { accessSync, constants, copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, spawnSparekey } from "../helpers/spawn-cli.js";
import { tempDir } from "../helpers/wait.js";

interface Entry {
  section: string;
  key: string;
  value: string;
}

/** systemd's unit syntax, the part these files use: `[Section]`, `Key=Value`, `#`/`;` comments. */
function parseUnit(text: string): Entry[] {
  const entries: Entry[] = [];
  let section = "";
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    if (line.endsWith("\\")) throw new Error(`line ${i + 1}: continuation lines are not used here`);
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header?.[1] !== undefined) {
      section = header[1];
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (kv?.[1] === undefined || kv[2] === undefined || section === "")
      throw new Error(`line ${i + 1}: not a Key=Value line in a section: ${raw}`);
    entries.push({ section, key: kv[1], value: kv[2] });
  }
  return entries;
}

/** Keys systemd knows in each section (the subset a sparekey unit may use); a typo is not one. */
const KNOWN: Record<string, readonly string[]> = {
  Unit: ["Description", "Documentation", "After", "Wants", "Requires", "PartOf"],
  Service: [
    "Type",
    "User",
    "Group",
    "UMask",
    "Environment",
    "ExecStartPre",
    "ExecStart",
    "Restart",
    "RestartSec",
    "KillSignal",
    "TimeoutStopSec",
    "StateDirectory",
    "StateDirectoryMode",
    "ReadWritePaths",
    "NoNewPrivileges",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "RestrictNamespaces",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "LockPersonality",
    "RemoveIPC",
    "SystemCallArchitectures",
    "RestrictAddressFamilies",
    "StandardOutput",
    "StandardError",
    "SyslogIdentifier",
  ],
  Install: ["WantedBy"],
};
const REPEATABLE = new Set(["Environment", "ExecStartPre", "Documentation"]);

const UNITS = ["sparekey-gateway.service", "sparekey-target@.service"] as const;
const unitText = (name: string) => readFileSync(join(ROOT, "deploy/systemd", name), "utf8");

function single(entries: readonly Entry[]): Record<string, string> {
  return Object.fromEntries(entries.filter((e) => !REPEATABLE.has(e.key)).map((e) => [e.key, e.value]));
}

function environment(entries: readonly Entry[]): Record<string, string> {
  return Object.fromEntries(
    entries.filter((e) => e.key === "Environment").map((e) => e.value.split("=", 2) as [string, string]),
  );
}

const HARDENING = {
  User: "sparekey",
  Group: "sparekey",
  UMask: "0077",
  Restart: "on-failure",
  StateDirectoryMode: "0700",
  NoNewPrivileges: "yes",
  ProtectSystem: "strict",
  ProtectHome: "yes",
  PrivateTmp: "yes",
  CapabilityBoundingSet: "",
  AmbientCapabilities: "",
  RestrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX",
  StandardOutput: "journal",
  StandardError: "journal",
};

describe("the systemd units in deploy/systemd", { timeout: 90_000 }, () => {
  it.each(UNITS)("%s uses known sections and keys, each non-repeatable key once", (name) => {
    const entries = parseUnit(unitText(name));
    expect([...new Set(entries.map((e) => e.section))]).toEqual(["Unit", "Service", "Install"]);
    const unknown = entries.filter((e) => !KNOWN[e.section]?.includes(e.key));
    expect(unknown).toEqual([]);
    const once = entries.filter((e) => !REPEATABLE.has(e.key)).map((e) => `${e.section}.${e.key}`);
    expect(once).toEqual([...new Set(once)]);
  });

  it.each(UNITS)(
    "%s runs hardened as the sparekey user with JSON logs, and explains the missing MemoryDenyWriteExecute",
    (name) => {
      const text = unitText(name);
      const entries = parseUnit(text);
      expect(single(entries)).toMatchObject(HARDENING);
      expect(environment(entries)).toMatchObject({ SPAREKEY_LOG_FORMAT: "json" });
      expect(entries.some((e) => e.key === "MemoryDenyWriteExecute")).toBe(false);
      expect(text).toMatch(/^# MemoryDenyWriteExecute= is deliberately absent: V8's JIT/m);
    },
  );

  it("the gateway unit checks its config before starting and may write only its data dir", () => {
    const entries = parseUnit(unitText("sparekey-gateway.service"));
    expect(single(entries)).toMatchObject({
      ExecStart: "/usr/bin/sparekey gateway --config /etc/sparekey/gateway.json",
      StateDirectory: "sparekey",
      ReadWritePaths: "/var/lib/sparekey",
      WantedBy: "multi-user.target",
    });
    expect(entries.filter((e) => e.key === "ExecStartPre").map((e) => e.value)).toEqual([
      "/usr/bin/sparekey gateway --check-config --config /etc/sparekey/gateway.json",
    ]);
  });

  it("/usr/bin/sparekey is the shipped wrapper, which runs the package's own bin", () => {
    const wrapper = join(ROOT, "deploy/bin/sparekey");
    accessSync(wrapper, constants.X_OK);
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      bin: Record<string, string>;
    };
    expect(readFileSync(wrapper, "utf8")).toContain(
      `exec /usr/bin/node /opt/sparekey/${pkg.bin.sparekey} "$@"`,
    );
    expect(pkg.bin.sparekey).toBe("dist/cli/sparekey.js");
    expect(existsSync(join(ROOT, "cli/sparekey.ts"))).toBe(true);
  });

  it("the gateway unit's ExecStartPre and ExecStart command lines run as written against a real config", async () => {
    const entries = parseUnit(unitText("sparekey-gateway.service"));
    const dir = tempDir();
    const config = join(dir, "gateway.json");
    const example = JSON.parse(readFileSync(join(ROOT, "examples/gateway.json"), "utf8")) as Record<
      string,
      unknown
    >;
    // Loopback and free ports: the example's listeners would be reachable and could be taken.
    const local = {
      ...example,
      data_dir: join(dir, "data"),
      host: "127.0.0.1",
      tls_port: 0,
      wss_port: 0,
      plain_port: 0,
    };
    writeFileSync(config, JSON.stringify(local));
    const argvOf = (key: string) => {
      const line = entries.find((e) => e.key === key)?.value ?? "";
      const [program, ...args] = line.split(" ");
      expect(program).toBe("/usr/bin/sparekey");
      return args.map((a) => (a === "/etc/sparekey/gateway.json" ? config : a));
    };
    const env = { ...environment(entries), SPAREKEY_LOG_LEVEL: "info" };

    const check = await spawnSparekey(argvOf("ExecStartPre"), { env });
    expect({ code: check.code, stderr: check.stderr }).toEqual({ code: 0, stderr: "" });
    expect(JSON.parse(check.stdout)).toEqual(local);

    // The unit does not make the data dir: the operator runs `sparekey init` once (docs/DEPLOY.md).
    const init = await spawnSparekey(["init", "--data", local.data_dir], { env });
    expect({ code: init.code, stderr: init.stderr }).toEqual({ code: 0, stderr: "" });

    let sent = false;
    const start = await spawnSparekey(argvOf("ExecStart"), {
      env,
      onStdout(soFar, proc) {
        if (!sent && soFar.includes("Ctrl-C to stop")) {
          sent = true;
          proc.kill("SIGTERM");
        }
      },
    });
    expect(start.code).toBe(0);
    const lines = start.stderr.split("\n").filter((l) => l !== "");
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ level: expect.any(Number) });
  });

  it("the target unit's ExecStart parses as a target command line (a missing config is config_invalid)", async () => {
    const entries = parseUnit(unitText("sparekey-target@.service"));
    const dir = tempDir();
    const line = single(entries).ExecStart ?? "";
    expect(line).toBe("/usr/bin/sparekey target --config /etc/sparekey/target-%i.json");
    const args = line
      .split(" ")
      .slice(1)
      .map((a) => a.replace("/etc/sparekey/target-%i.json", join(dir, "target-front-door.json")));
    const run = await spawnSparekey(args, { env: environment(entries) });
    expect({ code: run.code, stdout: run.stdout, stderr: run.stderr }).toEqual({
      code: 1,
      stdout: "",
      stderr: `error config_invalid: target config ${join(dir, "target-front-door.json")}: file not found\n`,
    });
  });

  const analyze = spawnSync("systemd-analyze", ["--version"]).status === 0;
  it.skipIf(!analyze)("systemd-analyze verify finds nothing to say about either unit", () => {
    const dir = tempDir();
    const wrapper = join(ROOT, "deploy/bin/sparekey");
    const files = [
      ["sparekey-gateway.service", "sparekey-gateway.service"],
      ["sparekey-target@.service", "sparekey-target@front-door.service"],
    ].map(([from = "", to = ""]) => {
      const path = join(dir, to);
      copyFileSync(join(ROOT, "deploy/systemd", from), path);
      // verify checks that the program exists; the installed path does not exist on a build machine.
      writeFileSync(path, readFileSync(path, "utf8").replaceAll("/usr/bin/sparekey", wrapper));
      return path;
    });
    const result = spawnSync("systemd-analyze", ["verify", ...files], { encoding: "utf8" });
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: "" });
  });
});
