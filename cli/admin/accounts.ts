import { addGrant, addTerminal, addUser, revokeGrant } from "../../keyserver/admin/accounts.js";
import {
  adminCommand,
  grantMode,
  modeOption,
  readPassword,
  serialOption,
  slotOption,
  userOption,
} from "./common.js";
import { GRANT_LIMIT_OPTIONS, grantPatch } from "./grant-terms.js";

export const userAdd = adminCommand(
  {
    name: "sparekey admin user add",
    summary:
      "add a user; the password comes from --password-file, SPAREKEY_PASSWORD or a prompt, never a flag",
    options: {
      user: userOption,
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
      serial: serialOption,
      user: userOption,
    },
  },
  async (ctx, p) => {
    const serial = p.required("serial");
    const user = p.required("user");
    await addTerminal(ctx, { serial, user });
    return `terminal ${serial} added for user ${user}`;
  },
);

export const grantAdd = adminCommand(
  {
    name: "sparekey admin grant add",
    summary:
      "let a user download (stored) or relay keys of a slot, with optional limits; grants an ended grant again",
    usage: "sparekey admin grant add --user U --slot S [options]   (`add` may be left out)",
    options: {
      slot: slotOption,
      user: userOption,
      mode: modeOption,
      ...GRANT_LIMIT_OPTIONS,
    },
  },
  async (ctx, p, io) => {
    const slot = p.required("slot");
    const user = p.required("user");
    const mode = grantMode(p);
    const patch = grantPatch(p, io);
    const terms = Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== null));
    await addGrant(ctx, { slot, user, mode, ...terms });
    return `user ${user} granted ${mode} on slot ${slot}`;
  },
);

/** `revoke-grant` and `grant end`: one command under two names. */
const endGrantCommand = (name: string) =>
  adminCommand(
    {
      name,
      summary: "end a user's grant on a slot, of one mode or every mode (relay and unlock stop at once)",
      options: {
        slot: slotOption,
        user: userOption,
        mode: { type: "string", help: "stored or relay", defaultText: "every mode" },
      },
    },
    async (ctx, p) => {
      const slot = p.required("slot");
      const user = p.required("user");
      const mode =
        p.values.mode !== undefined
          ? grantMode({ name: p.name, values: { mode: p.values.mode } })
          : undefined;
      const ended = await revokeGrant(ctx, { slot, user, ...(mode !== undefined ? { mode } : {}) });
      return `${ended.join(" and ")} grant of user ${user} on slot ${slot} revoked`;
    },
  );

export const revokeGrantCommand = endGrantCommand("sparekey admin revoke-grant");
export const grantEnd = endGrantCommand("sparekey admin grant end");
