/**
 * Reads a .tar.gz as a stream (tar-stream over node's gunzip): the dossier verifier looks at what
 * a vendor received without unpacking it anywhere and without holding it in memory. Every member
 * is handed over with its header (type, size, link target) before any byte of it is read, so the
 * caller decides what an unsafe member is. Bounded: total unpacked bytes, member count, and the
 * bytes between two members (an oversized pax or long-name record is buffered by the parser).
 */
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract, type Headers } from 'tar-stream';

export interface TarMember {
  /** As stored, with a leading `./` removed. */
  name: string;
  /** tar-stream's type: file, directory, symlink, link, character-device, block-device, fifo, … or 'unknown'. */
  type: string;
  size: number;
  linkname: string | null;
}

export interface TarLimits {
  /** Unpacked bytes in all (headers and padding included). */
  maxBytes: number;
  maxMembers: number;
  /** Bytes the parser may take in without yielding a member or member data: bounds pax/long-name records. */
  maxHeaderBytes: number;
}

export const DEFAULT_TAR_LIMITS: TarLimits = { maxBytes: 8 * 2 ** 30, maxMembers: 100_000, maxHeaderBytes: 8 * 2 ** 20 };

/** Counts what flows from gunzip into the parser; `progress()` says the parser handed something on. */
class Budget extends Transform {
  total = 0;
  sinceProgress = 0;
  constructor(private readonly limits: TarLimits) {
    super();
  }
  progress(): void {
    this.sinceProgress = 0;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.total += chunk.length;
    this.sinceProgress += chunk.length;
    if (this.total > this.limits.maxBytes) {
      done(new Error(`unpacks to more than ${this.limits.maxBytes} bytes (the cap)`));
      return;
    }
    if (this.sinceProgress > this.limits.maxHeaderBytes) {
      done(
        new Error(
          `holds more than ${this.limits.maxHeaderBytes} bytes without a member (an oversized pax or long-name record, or trailing data)`,
        ),
      );
      return;
    }
    done(null, chunk);
  }
}

function memberOf(h: Headers): TarMember {
  return { name: h.name.replace(/^(?:\.\/)+/, ''), type: h.type ?? 'unknown', size: h.size ?? 0, linkname: h.linkname ?? null };
}

/**
 * Calls `onMember` for each member in order with an iterable of its bytes (read it, or leave it:
 * what is left is skipped). A size that is not a whole non-negative number ends the read.
 */
export async function forEachTarGzMember(
  path: string,
  onMember: (member: TarMember, body: AsyncIterable<Buffer>) => Promise<void>,
  limits: TarLimits = DEFAULT_TAR_LIMITS,
): Promise<void> {
  const budget = new Budget(limits);
  const parser = extract();
  const fail = (why: string) => new Error(`${path} is not a readable .tar.gz: ${why}`);
  const feeding = pipeline(createReadStream(path), createGunzip(), budget, parser).then(
    () => undefined,
    (e: Error) => e,
  );
  let members = 0;
  let callerError: unknown;
  try {
    for await (const entry of parser) {
      budget.progress();
      const member = memberOf(entry.header);
      if (!Number.isSafeInteger(member.size) || member.size < 0)
        throw fail(`member ${JSON.stringify(member.name)} has size ${member.size}`);
      if (++members > limits.maxMembers) throw fail(`more than ${limits.maxMembers} members (the cap)`);
      // No return(): a reader that stops early must not destroy the entry (that ends the whole parse).
      const chunks = (entry as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
      const next = async (): Promise<IteratorResult<Buffer>> => {
        const r = await chunks.next();
        budget.progress();
        return r;
      };
      const body: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => ({ next }) };
      try {
        await onMember(member, body);
      } catch (e) {
        callerError = e;
        throw e;
      }
      while (!(await next()).done);
    }
  } catch (e) {
    parser.destroy();
    await feeding;
    if (e === callerError || (e as Error).message.startsWith(path)) throw e;
    throw fail((e as Error).message);
  }
  const fed = await feeding;
  if (fed) throw fail(fed.message);
}

export interface TarEntry extends TarMember {
  data: Buffer;
}

/** Every member with its bytes, in memory: for small archives (tests) only. */
export async function readTarGz(path: string, limits: TarLimits = { ...DEFAULT_TAR_LIMITS, maxBytes: 256 * 2 ** 20 }): Promise<TarEntry[]> {
  const out: TarEntry[] = [];
  await forEachTarGzMember(
    path,
    async (member, body) => {
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c);
      out.push({ ...member, data: Buffer.concat(chunks) });
    },
    limits,
  );
  return out;
}
