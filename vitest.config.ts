import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration tests bind their own ephemeral ports and temp dirs, so files may run in parallel.
    pool: "forks",
  },
});
