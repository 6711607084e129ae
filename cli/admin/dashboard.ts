import { SparekeyError } from "../../common/errors.js";
import { addDashboard, listDashboards } from "../../keyserver/admin/dashboard.js";
import { adminCommand, readPassword, table } from "./common.js";

export const dashboardAdd = adminCommand(
  {
    name: "sparekey admin dashboard add",
    summary:
      "add a read-only dashboard account (MQTT user name --user, any client id) watching some targets or all",
    usage: "sparekey admin dashboard add --user U (--targets a,b | --all) [--password-file F]",
    options: {
      user: { type: "string", help: "the dashboard's account name (its MQTT user name)" },
      targets: { type: "string", help: "comma-separated tids it may watch" },
      all: { type: "boolean", help: "it may watch every target, with + in the tid level" },
      "password-file": { type: "string", help: "file holding the password (one line)" },
    },
  },
  async (ctx, p, io) => {
    const user = p.required("user");
    const list = p.values.targets;
    if ((list !== undefined) === (p.values.all === true))
      throw new SparekeyError("bad_request", `${p.name}: give exactly one of --targets and --all`);
    const tids = list === undefined ? "all" : list.split(",").map((t) => t.trim());
    await addDashboard(ctx, { id: user, password: await readPassword(p.values["password-file"], io), tids });
    return `dashboard ${user} added, watching ${tids === "all" ? "every target" : tids.join(", ")}`;
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
    }));
    io.stdout.write(table(rows, ["user", "created", "targets"]));
    return `${dashboards.length} dashboards`;
  },
);
