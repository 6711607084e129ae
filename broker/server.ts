import { createServer, type Server, type Socket } from "node:net";
import { Aedes, type Client } from "aedes";
import { SparekeyError } from "../common/errors.js";
import type { Logger } from "../common/log.js";
import { Topics } from "../schemas/topics.js";
import { aedesHooks, observeAedes } from "./aedes-adapter.js";
import { type BrokerLimits, type LimitOverrides, resolveLimits } from "./limits.js";
import { type GuardEvents, PacketGuard } from "./packet-guard.js";
import type { Authenticator, Principal } from "./principal.js";
import { type BrokerStats, emptyStats } from "./stats.js";

export interface BrokerOptions extends LimitOverrides {
  host?: string;
  /** 0 picks a free port (tests). */
  port: number;
  prefix?: string;
  authenticator: Authenticator;
  logger: Logger;
}

export interface RunningBroker {
  readonly port: number;
  readonly url: string;
  readonly aedes: Aedes;
  readonly limits: BrokerLimits;
  /** A snapshot of the refusal counters. */
  stats(): BrokerStats;
  close(): Promise<void>;
}

export async function startBroker(options: BrokerOptions): Promise<RunningBroker> {
  const { host: hostOption, port: portOption, prefix, authenticator, logger, ...overrides } = options;
  const topics = new Topics(prefix);
  const limits = resolveLimits(overrides, topics.prefix);
  const log = logger.child({ component: "broker" });
  const stats = emptyStats();
  const onAuthenticated = (client: Client, principal: Principal) => {
    const conn: unknown = client.conn;
    if (conn instanceof PacketGuard) conn.open(limits.budgets[principal.role]);
  };
  const aedes = await Aedes.createBroker(
    aedesHooks({ topics, authenticator, limits, stats, log, onAuthenticated }),
  );
  observeAedes(aedes, { stats, log });

  const sockets = new Set<Socket>();
  const guardEvents = (socket: Socket): GuardEvents => ({
    onOversize() {
      stats.oversize_packet++;
      log.warn(
        { remote: socket.remoteAddress, max_bytes: limits.maxPacketBytes },
        "connection dropped: packet too large",
      );
    },
    onHeld() {
      stats.packets_held++;
    },
    onOverBudget() {
      stats.rate_limited++;
      log.warn({ remote: socket.remoteAddress }, "connection dropped: over its packet budget for too long");
    },
  });
  const server: Server = createServer((socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.setNoDelay(true);
    aedes.handle(new PacketGuard(socket, limits.maxPacketBytes, guardEvents(socket)));
  });
  const host = hostOption ?? "127.0.0.1";
  try {
    await listen(server, portOption, host);
  } catch (err) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw err;
  }
  server.on("error", (err) => log.error({ err }, "listener error"));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : portOption;
  log.info({ host, port }, "broker listening");
  return {
    port,
    url: `mqtt://${host}:${port}`,
    aedes,
    limits,
    stats: () => ({ ...stats }),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      // Connections that never completed CONNECT are not aedes clients: end them too.
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE") {
        reject(new SparekeyError("port_in_use", `port ${port} on ${host} is already in use`, { cause: err }));
      } else reject(err);
    });
    server.listen(port, host, () => resolve());
  });
}
