/** The one SIGINT/SIGTERM handler of a long-running command: resolves on the first signal. */
export function untilSignal(signal?: AbortSignal): Promise<NodeJS.Signals | "abort"> {
  return new Promise((resolve) => {
    const done = (s: NodeJS.Signals | "abort") => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      signal?.removeEventListener("abort", onAbort);
      resolve(s);
    };
    const onInt = () => done("SIGINT");
    const onTerm = () => done("SIGTERM");
    const onAbort = () => done("abort");
    process.once("SIGINT", onInt);
    process.once("SIGTERM", onTerm);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
