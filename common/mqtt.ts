import { Socket } from "node:net";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";

import type { OutgoingMessage } from "../schemas/topics.js";

export type { MqttClient };

/** The IANA-registered MQTT port (Mosquitto's default): where a plain broker such as Mosquitto listens. */
export const MQTT_PORT = 1883;
/**
 * The gateway's own ports, clear of Mosquitto's (1883 plain, 8883 TLS, 8884 TLS with client
 * certificates, 8080/8081 WebSocket) so both can run on one machine.
 */
export const MQTTS_PORT = 18883;
export const WSS_PORT = 18884;
export const PLAIN_PORT = 11883;
export const DEFAULT_BROKER_URL = `mqtt://127.0.0.1:${PLAIN_PORT}`;

/** How an mqtts:// or wss:// client checks the broker, and proves itself when it has a certificate. */
export interface ClientTls {
  /** The only CA the broker's certificate may chain to (the gateway's own); the system's are not used. */
  ca: string;
  /** A client certificate and its key (a target's, subject CN = its tid). */
  cert?: string;
  key?: string;
}

/** The `tls` option from a config or fob file's PEM fields; none when the file has no CA. */
export function fileTls(file: {
  ca_pem?: string | undefined;
  client_cert_pem?: string | undefined;
  client_key_pem?: string | undefined;
}): { tls?: ClientTls } {
  if (file.ca_pem === undefined) return {};
  const tls: ClientTls = { ca: file.ca_pem };
  if (file.client_cert_pem !== undefined && file.client_key_pem !== undefined) {
    tls.cert = file.client_cert_pem;
    tls.key = file.client_key_pem;
  }
  return { tls };
}

export interface ConnectOptions {
  url: string;
  tls?: ClientTls;
  clientId: string;
  username?: string;
  password?: string;
  /** From `Topics.message`, so the will's topic, QoS and retain flag are the table's. */
  will?: OutgoingMessage;
  keepalive?: number;
  /** ms between reconnect attempts; 0 disables reconnecting (the caller owns the line). */
  reconnectPeriod?: number;
  connectTimeout?: number;
  clean?: boolean;
}

function toClientOptions(o: ConnectOptions): IClientOptions {
  const opts: IClientOptions = {
    clientId: o.clientId,
    protocolVersion: 4,
    clean: o.clean ?? true,
    keepalive: o.keepalive ?? 30,
    reconnectPeriod: o.reconnectPeriod ?? 1000,
    connectTimeout: o.connectTimeout ?? 10_000,
    resubscribe: true,
  };
  if (o.tls) {
    opts.ca = o.tls.ca;
    // MQTT.js verifies by default; written out so no option elsewhere can turn it off.
    opts.rejectUnauthorized = true;
    if (o.tls.cert !== undefined && o.tls.key !== undefined) {
      opts.cert = o.tls.cert;
      opts.key = o.tls.key;
    }
  }
  if (o.username !== undefined) opts.username = o.username;
  if (o.password !== undefined) opts.password = o.password;
  if (o.will)
    opts.will = {
      topic: o.will.topic,
      payload: Buffer.from(o.will.payload),
      qos: o.will.qos,
      retain: o.will.retain,
    };
  return opts;
}

/** Nagle's algorithm adds tens of ms to small frames under load; frames are latency-bound. */
function enableNoDelay(client: MqttClient): void {
  const set = () => {
    const stream: unknown = client.stream;
    if (stream instanceof Socket) stream.setNoDelay(true);
  };
  set();
  client.on("connect", set);
}

/** Connect and resolve once CONNACK arrived; rejects with the broker's refusal. */
export async function connectMqtt(o: ConnectOptions): Promise<MqttClient> {
  const client = await mqtt.connectAsync(o.url, toClientOptions(o));
  enableNoDelay(client);
  return client;
}

/** Start connecting without waiting (long-running services that must survive a broker that is down). */
export function connectMqttLater(o: ConnectOptions): MqttClient {
  const client = mqtt.connect(o.url, toClientOptions(o));
  enableNoDelay(client);
  return client;
}
