/**
 * A remote file followed like `tail -c +1 -F`, read by offset over an SFTP channel that is
 * already open: no process on the host, no new channel per file. A new channel costs a
 * login shell and its rc files on many hosts (seconds each); a read costs one round trip.
 */
import { Readable } from 'node:stream';
import type { SFTPWrapper } from 'ssh2';

export interface FollowOptions {
  /** How often an idle file is read again (default 100 ms): the most a new byte waits. */
  intervalMs?: number;
}

const CHUNK = 64 * 1024;
/** SSH_FX_NO_SUCH_FILE: the file is not there yet (tail -F waits for it too). */
const NO_SUCH_FILE = 2;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function call<T>(op: (cb: (err: Error | null | undefined, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => op((err, value) => (err ? reject(err) : resolve(value))));
}

/** undefined for a file that is not there (yet, or any more); any other failure is thrown. */
function unlessMissing(e: unknown): undefined {
  if ((e as { code?: unknown }).code === NO_SUCH_FILE) return undefined;
  throw e;
}

/** Best effort: on a channel that is gone there is nothing left to close. */
function closeQuietly(s: SFTPWrapper, handle: Buffer): void {
  try {
    s.close(handle, () => undefined);
  } catch {
    // the channel is closed already
  }
}

/**
 * The file's bytes from offset 0, then whatever is appended, until the stream is destroyed.
 * A file that shrinks under the same path (truncated, or replaced by a log rotation) is read
 * again from its start. An SFTP failure (the connection lost) ends the stream with an error.
 */
export function followRemoteFile(sftp: () => Promise<SFTPWrapper>, path: string, opts: FollowOptions = {}): Readable {
  const intervalMs = opts.intervalMs ?? 100;
  let stopped = false;
  const out = new Readable({
    read() {},
    destroy(err, cb) {
      stopped = true;
      cb(err);
    },
  });
  // A request written to a channel that has just closed may never be answered: the channel's
  // own close ends every wait at once.
  let lose: (e: Error) => void = () => undefined;
  const lost = new Promise<never>((_, reject) => {
    lose = reject;
  });
  lost.catch(() => undefined);
  const watched = new WeakSet<SFTPWrapper>();
  const watch = (s: SFTPWrapper) => {
    if (watched.has(s)) return;
    watched.add(s);
    // The channel ends (`end`) before it closes; a request sent after the end is never answered.
    for (const event of ['end', 'close'])
      s.once(event, () => lose(new Error(`the SFTP channel ${event === 'end' ? 'ended' : 'closed'} (connection lost)`)));
  };
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, lost]);
  void (async () => {
    // A handle belongs to its channel: once open, a lost channel is an error, never a new one.
    let open: { s: SFTPWrapper; handle: Buffer } | undefined;
    let offset = 0;
    const buf = Buffer.alloc(CHUNK);
    try {
      while (!stopped) {
        if (!open) {
          const s = await sftp();
          watch(s);
          const handle = await guard(call<Buffer>((cb) => s.open(path, 'r', cb))).catch(unlessMissing);
          if (!handle) {
            await guard(sleep(intervalMs));
            continue;
          }
          open = { s, handle };
        }
        const { s, handle } = open;
        const n = await guard(call<number>((cb) => s.read(handle, buf, 0, CHUNK, offset, cb)));
        if (stopped) break;
        if (n > 0) {
          offset += n;
          out.push(Buffer.from(buf.subarray(0, n)));
          continue;
        }
        const size = await guard(call<{ size?: number }>((cb) => s.stat(path, cb))).then((a) => a.size, unlessMissing);
        if (size !== undefined && size < offset) {
          closeQuietly(s, handle);
          open = undefined;
          offset = 0;
          continue;
        }
        await guard(sleep(intervalMs));
      }
    } catch (e) {
      if (!stopped) out.destroy(new Error(`following ${path} over SFTP failed: ${(e as Error).message}`));
    } finally {
      if (open) closeQuietly(open.s, open.handle);
    }
  })();
  return out;
}
