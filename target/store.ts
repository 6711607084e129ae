import { join } from "node:path";
import { readJsonFile, writeJsonAtomic } from "../common/atomic-file.js";
import { SparekeyError } from "../common/errors.js";
import { TargetStateFile } from "../schemas/records.js";
import { assertId } from "../schemas/topics.js";
import { emptyState } from "./memory.js";

export function stateFilePath(stateDir: string, tid: string): string {
  return join(stateDir, `${assertId(tid, "tid")}.state.json`);
}

/** `${state_dir}/${tid}.state.json`: read validated, written whole and atomically (write, fsync, rename). */
export class TargetStore {
  readonly path: string;
  constructor(
    stateDir: string,
    private readonly tid: string,
  ) {
    this.path = stateFilePath(stateDir, tid);
  }

  /** The persisted state, or a fresh one when the file does not exist yet. */
  load(): TargetStateFile {
    const state = readJsonFile(this.path, TargetStateFile, "target state");
    if (!state) return emptyState(this.tid);
    if (state.tid !== this.tid) {
      throw new SparekeyError("config_invalid", `target state ${this.path}: belongs to another target`);
    }
    return state;
  }

  save(state: TargetStateFile): void {
    writeJsonAtomic(this.path, state);
  }
}
