import type { RefusalReason } from "../schemas/reasons.js";

/**
 * The decision's checks as typed stages. A check reads the current stage's value and returns a refusal
 * reason or nothing; a stage turns that value into the next one (or refuses). Each step is typed over
 * the value it reads, so a check placed before the stage that fills its input does not compile.
 */

/** A stage's refusal: a class, so a good value (any object) is told apart without a wrapper. */
export class Refused {
  constructor(readonly reason: RefusalReason) {}
}

export interface NamedCheck<I, C> {
  readonly name: string;
  readonly run: (input: I, ctx: C) => RefusalReason | undefined;
}

export interface NamedStage<I, O, C> {
  readonly name: string;
  readonly run: (input: I, ctx: C) => O | Refused;
}

export type Outcome<O> =
  | { readonly ok: true; readonly value: O }
  | { readonly ok: false; readonly reason: RefusalReason; readonly check: string; readonly last: unknown };

interface Step<C> {
  readonly name: string | undefined;
  readonly stage: boolean;
  readonly run: (input: unknown, ctx: C) => unknown;
}

/** An ordered list of named steps from an `I` to an `O`, built one typed step at a time. */
export class Checks<I, O, C> {
  private constructor(private readonly steps: readonly Step<C>[]) {}

  static over<I, C>(): Checks<I, I, C> {
    return new Checks<I, I, C>([]);
  }

  /** Checks on the current value, run in the order given. */
  check(...checks: readonly NamedCheck<O, C>[]): Checks<I, O, C> {
    return new Checks<I, O, C>([...this.steps, ...checks.map((c) => this.step(c.name, false, c.run))]);
  }

  /** A named step that refuses or gives the value the following checks read. */
  stage<N>(stage: NamedStage<O, N, C>): Checks<I, N, C> {
    return new Checks<I, N, C>([...this.steps, this.step(stage.name, true, stage.run)]);
  }

  /** An unnamed step that cannot refuse (building the result): not part of the decision's order. */
  map<N>(fn: (input: O, ctx: C) => N): Checks<I, N, C> {
    return new Checks<I, N, C>([...this.steps, this.step(undefined, true, fn)]);
  }

  /** The names of the checks and stages, in the order they run. */
  get names(): readonly string[] {
    return this.steps.flatMap((s) => (s.name === undefined ? [] : [s.name]));
  }

  run(input: I, ctx: C): Outcome<O> {
    let value: unknown = input;
    for (const step of this.steps) {
      const result = step.run(value, ctx);
      if (step.stage) {
        if (result instanceof Refused) return refusal(result.reason, step, value);
        value = result;
      } else if (result !== undefined) {
        return refusal(result as RefusalReason, step, value);
      }
    }
    // Every step was added through a signature typed over the previous step's output.
    return { ok: true, value: value as O };
  }

  private step<X, Y>(name: string | undefined, stage: boolean, run: (input: X, ctx: C) => Y): Step<C> {
    // The builder's signatures guarantee each step receives the value its predecessor produced.
    return { name, stage, run: run as (input: unknown, ctx: C) => unknown };
  }
}

function refusal<C>(reason: RefusalReason, step: Step<C>, last: unknown): Outcome<never> {
  return { ok: false, reason, check: step.name ?? "", last };
}
