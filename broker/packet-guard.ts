import type { Socket } from "node:net";
import { Duplex } from "node:stream";

/**
 * Follows MQTT packet boundaries in a byte stream by reading only fixed headers (type byte and the
 * 1–4 byte Remaining Length, MQTT 3.1.1 §2.2.3) and skipping bodies, so its cost is per packet, not
 * per byte. It says "too large" as soon as a header announces a packet over the limit: aedes's
 * parser would otherwise keep buffering the body until it is complete, whatever its size.
 */
export class PacketSizeScanner {
  /** Body bytes still to skip before the next fixed header. */
  private skip = 0;
  /** -1: expecting a type byte; 0–4: Remaining Length bytes read so far. */
  private lengthBytes = -1;
  private length = 0;
  private multiplier = 1;

  constructor(private readonly maxPacketBytes: number) {}

  /** false when the stream announced a packet over the limit or a malformed Remaining Length. */
  feed(chunk: Buffer): boolean {
    let i = 0;
    const end = chunk.length;
    while (i < end) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, end - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const byte = chunk[i++] ?? 0;
      if (this.lengthBytes < 0) {
        this.lengthBytes = 0;
        this.length = 0;
        this.multiplier = 1;
        continue;
      }
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      this.lengthBytes++;
      if (byte & 0x80) {
        // [MQTT-2.2.3] at most four Remaining Length bytes
        if (this.lengthBytes >= 4) return false;
        // More length bytes follow and can only add to the size: refuse as soon as it is over.
        if (1 + this.lengthBytes + this.length > this.maxPacketBytes) return false;
        continue;
      }
      if (1 + this.lengthBytes + this.length > this.maxPacketBytes) return false;
      this.skip = this.length;
      this.lengthBytes = -1;
    }
    return true;
  }
}

/**
 * The socket as aedes sees it: reads pass through a `PacketSizeScanner` before aedes can buffer
 * them; writes go straight to the socket. `onOversize` runs once, before the connection is
 * destroyed.
 */
export class PacketSizeGuard extends Duplex {
  private readonly scanner: PacketSizeScanner;
  /** The peer's IP address, for the authenticator's per-address login limits. */
  readonly remoteAddress: string | undefined;

  constructor(
    private readonly socket: Socket,
    maxPacketBytes: number,
    private readonly onOversize: () => void,
  ) {
    super({ allowHalfOpen: false });
    this.scanner = new PacketSizeScanner(maxPacketBytes);
    this.remoteAddress = socket.remoteAddress;
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("end", () => this.push(null));
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => this.destroy());
  }

  private onData(chunk: Buffer): void {
    if (this.destroyed) return;
    if (!this.scanner.feed(chunk)) {
      this.onOversize();
      this.destroy(new Error("packet too large"));
      return;
    }
    if (!this.push(chunk)) this.socket.pause();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.socket.write(chunk, encoding, callback);
  }

  override _writev(
    chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>,
    callback: (err?: Error | null) => void,
  ): void {
    // mqtt-packet corks the stream and writes a packet in pieces: hand them over as one batch.
    this.socket.cork();
    const last = chunks.length - 1;
    for (let i = 0; i < last; i++) {
      const c = chunks[i];
      if (c) this.socket.write(c.chunk, c.encoding);
    }
    const c = chunks[last];
    if (c) this.socket.write(c.chunk, c.encoding, callback);
    else callback();
    this.socket.uncork();
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.socket.destroy();
    callback(err);
  }
}
