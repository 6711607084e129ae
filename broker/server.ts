import { createServer, type Server, type Socket } from "node:net";
import { Aedes, type AuthenticateError, type Client } from "aedes";
import { SparekeyError } from "../common/errors.js";
import type { Logger } from "../common/log.js";
import { Topics } from "../schemas/topics.js";
import { authorizePublish, authorizeSubscribe } from "./acl.js";
import type { Authenticator, Principal } from "./principal.js";

export interface BrokerOptions {
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
  close(): Promise<void>;
}

function authError(code: 2 | 4 | 5, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: code }) as AuthenticateError;
}

export async function startBroker(options: BrokerOptions): Promise<RunningBroker> {
  const topics = new Topics(options.prefix);
  const log = options.logger.child({ component: "broker" });
  const principals = new WeakMap<Client, Principal>();
  const aedes = await Aedes.createBroker({
    authenticate(client, username, password, done) {
      options.authenticator.authenticate(client.id, username, password).then(
        (principal) => {
          if (!principal) {
            log.info({ client_id: client.id }, "connect refused");
            done(authError(4, "bad username or password"), false);
            return;
          }
          principals.set(client, principal);
          done(null, true);
        },
        (err: unknown) => {
          log.error({ err, client_id: client.id }, "authenticator failed");
          done(authError(5, "not authorised"), false);
        },
      );
    },
    authorizePublish(client, packet, done) {
      if (!client) return done(null);
      if (packet.topic.startsWith("$SYS/")) return done(new Error("$SYS/ topic is reserved"));
      const principal = principals.get(client);
      if (principal && authorizePublish(principal, packet.topic, packet.retain, topics)) return done(null);
      log.warn({ client_id: client.id, topic: packet.topic }, "publish refused");
      done(new Error("publish not authorised"));
    },
    authorizeSubscribe(client, sub, done) {
      const principal = principals.get(client);
      if (principal && authorizeSubscribe(principal, sub.topic, topics)) return done(null, sub);
      log.warn({ client_id: client.id, topic: sub.topic }, "subscribe refused");
      done(null, null);
    },
  });
  const server: Server = createServer((socket: Socket) => {
    socket.setNoDelay(true);
    aedes.handle(socket);
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE") {
        reject(
          new SparekeyError("port_in_use", `port ${options.port} on ${host} is already in use`, {
            cause: err,
          }),
        );
      } else reject(err);
    });
    server.listen(options.port, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  log.info({ host, port }, "broker listening");
  return {
    port,
    url: `mqtt://${host}:${port}`,
    aedes,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}
