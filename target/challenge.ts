import { randomBytes } from "node:crypto";

/** 16 random bytes, base64url: the nonce a frame must echo. */
export function freshNonce(): string {
  return randomBytes(16).toString("base64url");
}

/**
 * Current and previous nonce. The previous one stays good for one period, so a frame signed just
 * before a rotation is not refused while it travels.
 */
export class ChallengeRotator {
  private current: string;
  private previousNonce: string | undefined;
  private rotatedAt: number;

  constructor(
    private readonly now: () => number,
    private readonly nonce: () => string = freshNonce,
  ) {
    this.current = this.nonce();
    this.rotatedAt = now();
  }

  rotate(): void {
    this.previousNonce = this.current;
    this.current = this.nonce();
    this.rotatedAt = this.now();
  }

  get currentNonce(): string {
    return this.current;
  }
  get previous(): string | undefined {
    return this.previousNonce;
  }
  /** Unix ms of the last rotation. */
  get ts(): number {
    return this.rotatedAt;
  }
}
