import { parseDuration, parseInstant, parseSchedule } from "../../common/time-input.js";
import { formatWall, localZone } from "../../common/time-zone.js";
import { addGrant, addTerminal, addUser, revokeGrant } from "../../keyserver/admin/accounts.js";
import { adminCommand, grantMode, modeOption, readPassword } from "./common.js";

export const userAdd = adminCommand(
  {
    name: "sparekey admin user add",
    summary:
      "add a user; the password comes from --password-file, SPAREKEY_PASSWORD or a prompt, never a flag",
    options: {
      user: { type: "string", help: "user id" },
      "password-file": { type: "string", help: "file holding the password (one line)" },
    },
  },
  async (ctx, p, io) => {
    const user = p.required("user");
    await addUser(ctx, { user, password: await readPassword(p.values["password-file"], io) });
    return `user ${user} added`;
  },
);

export const terminalAdd = adminCommand(
  {
    name: "sparekey admin terminal add",
    summary: "register a phone (its serial) for a user",
    options: {
      serial: { type: "string", help: "the terminal's serial (its MQTT client id)" },
      user: { type: "string", help: "user id" },
    },
  },
  async (ctx, p) => {
    const serial = p.required("serial");
    const user = p.required("user");
    await addTerminal(ctx, { serial, user });
    return `terminal ${serial} added for user ${user}`;
  },
);

export const grant = adminCommand(
  {
    name: "sparekey admin grant",
    summary: "let a user download (stored) or relay keys of a slot, with optional limits",
    options: {
      slot: { type: "string", help: "slot id" },
      user: { type: "string", help: "user id" },
      mode: modeOption,
      nbf: {
        type: "string",
        help: "not before: ISO 8601 (2006-01-26T21:00, +01:00 or Z), YYYYMMDDhhmmss, or @UNIX",
      },
      exp: { type: "string", help: "expires: same forms as --nbf" },
      tz: { type: "string", help: "zone for dates without one", defaultText: "this system's zone" },
      "max-uses": { type: "string", help: "uses allowed per credential" },
      schedule: {
        type: "string",
        multiple: true,
        help: 'weekly window in the target\'s zone, e.g. "Mon-Fri 08:00-18:00"',
      },
      "first-use-ttl": { type: "string", help: "key expires this long after first use: 90s, 30m, 2h" },
      "unlock-password": { type: "boolean", help: "remote unlock needs the user's password again" },
    },
  },
  async (ctx, p, io) => {
    const slot = p.required("slot");
    const user = p.required("user");
    const mode = grantMode(p);
    const v = p.values;
    const zone = v.tz ?? localZone();
    const instant = (name: "nbf" | "exp") => {
      const text = v[name];
      if (text === undefined) return undefined;
      const at = parseInstant(text, zone);
      // Always say which zone the value was read in and what instant it became.
      io.stdout.write(`${name}: ${text} read in ${at.zone} = ${at.utc} (${formatWall(at.unix, zone)})\n`);
      return at.unix;
    };
    const nbf = instant("nbf");
    const exp = instant("exp");
    const maxUses = p.int("max-uses", 1, 1_000_000);
    const schedule = v.schedule.map((w) => parseSchedule(w));
    const ttl = v["first-use-ttl"];
    const firstUseTtl = ttl !== undefined ? parseDuration(ttl) : undefined;
    await addGrant(ctx, {
      slot,
      user,
      mode,
      ...(nbf !== undefined ? { nbf } : {}),
      ...(exp !== undefined ? { exp } : {}),
      ...(maxUses !== undefined ? { max_uses: maxUses } : {}),
      ...(schedule.length > 0 ? { schedule } : {}),
      ...(firstUseTtl !== undefined ? { first_use_ttl_s: firstUseTtl } : {}),
      ...(v["unlock-password"] ? { unlock_password: true } : {}),
    });
    return `user ${user} granted ${mode} on slot ${slot}`;
  },
);

export const revokeGrantCommand = adminCommand(
  {
    name: "sparekey admin revoke-grant",
    summary: "revoke a user's grant on a slot (relay and unlock stop at once)",
    options: {
      slot: { type: "string", help: "slot id" },
      user: { type: "string", help: "user id" },
      mode: modeOption,
    },
  },
  async (ctx, p) => {
    const slot = p.required("slot");
    const user = p.required("user");
    const mode = grantMode(p);
    await revokeGrant(ctx, { slot, user, mode });
    return `${mode} grant of user ${user} on slot ${slot} revoked`;
  },
);
