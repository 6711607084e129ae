import type { OpDef } from "./context.js";
import { download } from "./download.js";

/** op name (the last topic level) -> definition. A Map, so `__proto__` or `constructor` find nothing. */
export const OPS: ReadonlyMap<string, OpDef> = new Map<string, OpDef>([["download", download]]);
