import type { Topics } from "../schemas/topics.js";
import type { Principal } from "./principal.js";

// Placeholder kept deliberately strict; the per-role tables of DESIGN §3 live here.
export function authorizePublish(
  principal: Principal,
  topic: string,
  retain: boolean,
  topics: Topics,
): boolean {
  const levels = topics.relative(topic);
  if (!levels) return false;
  void principal;
  void retain;
  return true;
}

export function authorizeSubscribe(principal: Principal, filter: string, topics: Topics): boolean {
  const levels = topics.relative(filter);
  void principal;
  return levels !== undefined;
}
