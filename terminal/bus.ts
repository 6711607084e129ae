import type { MqttClient } from "mqtt";
import { SparekeyError } from "../common/errors.js";

/**
 * The few MQTT operations the terminal's components use. Components take this rather than a client
 * so their timing logic can be tested with fake timers and no broker.
 */
export interface MessageBus {
  subscribe(topic: string, qos: 0 | 1): Promise<void>;
  unsubscribe(topic: string): Promise<void>;
  /** Named as MQTT.js names it, so `Topics.publish` takes a bus or a client alike. */
  publishAsync(topic: string, payload: string, opts: { qos: 0 | 1; retain: boolean }): Promise<void>;
  /** Returns the function that removes the handler. */
  onMessage(handler: (topic: string, payload: Buffer, retain: boolean) => void): () => void;
}

export function mqttBus(client: MqttClient): MessageBus {
  return {
    async subscribe(topic, qos) {
      const granted = await client.subscribeAsync(topic, { qos });
      // A refused subscription is SUBACK 128, not an error, in MQTT 3.1.1 [MQTT-3.9.3].
      if (granted.some((g) => g.qos === 128)) {
        throw new SparekeyError("forbidden", `subscription to ${topic} refused by the broker`);
      }
    },
    async unsubscribe(topic) {
      await client.unsubscribeAsync(topic);
    },
    async publishAsync(topic, payload, opts) {
      // MQTT.js queues QoS 0 messages while offline and sends them after a reconnect; a key frame
      // must never go out late, so a QoS 0 publish without a connection fails instead.
      if (opts.qos === 0 && !client.connected) {
        throw new SparekeyError("line_down", `not connected: ${topic} not published`);
      }
      await client.publishAsync(topic, payload, { qos: opts.qos, retain: opts.retain });
    },
    onMessage(handler) {
      const listener = (topic: string, payload: Buffer, packet: { retain?: boolean }) =>
        handler(topic, payload, packet.retain === true);
      client.on("message", listener);
      return () => {
        client.off("message", listener);
      };
    },
  };
}
