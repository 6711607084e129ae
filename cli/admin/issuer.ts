import { listIssuers, retireIssuer, rotateIssuer } from "../../keyserver/admin/issuer.js";
import { adminCommand, table } from "./common.js";

const iso = (s: number | undefined): string | undefined =>
  s === undefined ? undefined : new Date(s * 1000).toISOString();

export const issuerRotate = adminCommand(
  {
    name: "sparekey admin issuer rotate",
    summary: "make a new issuer key active; the old ones stay trusted until retired",
    options: {},
  },
  async (ctx) => {
    const r = await rotateIssuer(ctx);
    return `issuer key ${r.kid} active; ${r.targets} target registries to republish`;
  },
);

export const issuerList = adminCommand(
  {
    name: "sparekey admin issuer list",
    summary: "list the issuer keys: kid, created, active, retired",
    options: { json: { type: "boolean", help: "print JSON" } },
  },
  async (ctx, p, io) => {
    const keys = listIssuers(ctx);
    if (p.values.json) return JSON.stringify(keys);
    const rows = keys.map((k) => ({
      kid: k.kid,
      created: iso(k.created),
      active: k.active ? "yes" : "",
      retired: iso(k.retired),
    }));
    io.stdout.write(table(rows, ["kid", "created", "active", "retired"]));
    const retired = keys.filter((k) => k.retired !== undefined).length;
    return `${keys.length - retired} trusted, ${retired} retired`;
  },
);

export const issuerRetire = adminCommand(
  {
    name: "sparekey admin issuer retire",
    summary: "stop trusting an old issuer key (never the active one)",
    options: { kid: { type: "string", help: "the key id to retire" } },
  },
  async (ctx, p) => {
    const r = await retireIssuer(ctx, p.required("kid"));
    return `issuer key ${r.kid} retired; ${r.targets} target registries to republish`;
  },
);
