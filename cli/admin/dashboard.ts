import { SparekeyError } from "../../common/errors.js";
import { addDashboard, listDashboards } from "../../keyserver/admin/dashboard.js";
import { adminCommand, readPassword, table } from "./common.js";

export const dashboardAdd = adminCommand(
  {
    name: "sparekey admin dashboard add",
    summary:
      "add a read-only dashboard account (MQTT user name --user, any client id) watching some targets or all",
    usage:
      "sparekey admin dashboard add --user U (--targets a,b | --all) [--may-unlock --as-user V] [--password-file F]",
    options: {
      user: { type: "string", help: "the dashboard's account name (its MQTT user name)" },
      targets: { type: "string", help: "comma-separated tids it may watch" },
      all: { type: "boolean", help: "it may watch every target, with + in the tid level" },
      "may-unlock": {
        type: "boolean",
        help: "it may ask one-time unlocks of its targets (Home Assistant), on behalf of --as-user",
      },
      "as-user": { type: "string", help: "the user whose grants its unlocks use (with --may-unlock)" },
      "password-file": { type: "string", help: "file holding the password (one line)" },
    },
  },
  async (ctx, p, io) => {
    const user = p.required("user");
    const list = p.values.targets;
    if ((list !== undefined) === (p.values.all === true))
      throw new SparekeyError("bad_request", `${p.name}: give exactly one of --targets and --all`);
    const asUser = p.values["as-user"];
    if ((asUser !== undefined) !== (p.values["may-unlock"] === true))
      throw new SparekeyError("bad_request", `${p.name}: --may-unlock and --as-user go together`);
    const tids = list === undefined ? "all" : list.split(",").map((t) => t.trim());
    const password = await readPassword(p.values["password-file"], io);
    await addDashboard(ctx, {
      id: user,
      password,
      tids,
      ...(asUser !== undefined ? { unlockAs: asUser } : {}),
    });
    const watching = tids === "all" ? "every target" : tids.join(", ");
    return `dashboard ${user} added, watching ${watching}${asUser !== undefined ? `, unlocking as ${asUser}` : ""}`;
  },
);

export const dashboardList = adminCommand(
  {
    name: "sparekey admin dashboard list",
    summary: "list the dashboard accounts and the targets each may watch",
    options: { json: { type: "boolean", help: "print JSON" } },
  },
  async (ctx, p, io) => {
    const dashboards = await listDashboards(ctx);
    if (p.values.json) return JSON.stringify(dashboards);
    const rows = dashboards.map((d) => ({
      user: d.id,
      created: new Date(d.created * 1000).toISOString(),
      targets: d.tids === "all" ? "all" : d.tids.join(","),
      unlocks_as: d.unlockAs ?? "-",
    }));
    io.stdout.write(table(rows, ["user", "created", "targets", "unlocks_as"]));
    return `${dashboards.length} dashboards`;
  },
);
