/**
 * A tty through serialport, with one repair: when the far side of a tty hangs up (a pty
 * whose master closed — QEMU or socat exited — or a USB adapter whose driver reports end
 * of file), read() returns 0 bytes forever. serialport 13 retries such reads at once,
 * spinning a core and never reporting the loss (seen here: 1.2 s of CPU per 1.5 s).
 * Its Linux binding's read is replaced by the same loop with "0 bytes = hung up", which
 * the stream turns into a disconnect ('close'), so a pending expect fails at once.
 */
import { read as fsRead } from 'node:fs';
import { promisify } from 'node:util';
import { SerialPort } from 'serialport';
import type { Transport } from './console-transport.js';
import { LabError } from './errors.js';

const readAsync = promisify(fsRead);

type Binding = typeof SerialPort.binding;
type PortBinding = Awaited<ReturnType<Binding['open']>>;
/** What the Linux/darwin bindings have beyond the interface (bindings-cpp 13). */
interface UnixPortBinding {
  fd: number | null;
  isOpen: boolean;
  poller?: { once(event: 'readable', cb: (err: Error | null) => void): unknown };
}

function flagged(message: string, flag: 'canceled' | 'disconnect'): Error {
  return Object.assign(new Error(message), { [flag]: true });
}

function repairRead(port: PortBinding): void {
  const unix = port as unknown as UnixPortBinding;
  if (typeof unix.fd !== 'number' || !unix.poller) return; // not a unix binding: leave it alone
  const poller = unix.poller;
  port.read = async (buffer: Buffer, offset: number, length: number) => {
    for (;;) {
      if (!unix.isOpen || unix.fd === null) throw flagged('Port is not open', 'canceled');
      try {
        const { bytesRead } = await readAsync(unix.fd, buffer, offset, length, null);
        if (bytesRead === 0) throw flagged('the line hung up (read returned end of file)', 'disconnect');
        return { bytesRead, buffer };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK' && code !== 'EINTR') throw e;
        // Closed while the read was in flight: the poller is destroyed, and polling it
        // would touch freed native memory (SIGSEGV, seen).
        if (!unix.isOpen || unix.fd === null) throw flagged('Port is not open', 'canceled');
        await new Promise<void>((resolve, reject) => poller.once('readable', (err) => (err ? reject(err) : resolve())));
      }
    }
  };
}

const base = SerialPort.binding;
const hangupAwareBinding = {
  list: () => base.list(),
  async open(options: Parameters<Binding['open']>[0]) {
    const port = await (base.open as (o: typeof options) => Promise<PortBinding>)(options);
    repairRead(port);
    return port;
  },
};

export async function openSerial(path: string, baudRate: number, host: string, where: string): Promise<Transport> {
  // lock: an exclusive flock, so a second reader (another run, a forgotten minicom) is
  // refused instead of silently stealing half the bytes.
  const options = { path, baudRate, lock: true, autoOpen: false, binding: hangupAwareBinding };
  const port = new SerialPort(options as ConstructorParameters<typeof SerialPort>[0]);
  try {
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  } catch (e) {
    const msg = (e as Error).message;
    if (/Cannot lock port/i.test(msg))
      throw new LabError('console-busy', `${path} is already open elsewhere (${msg})`, { host }, { cause: e });
    throw new LabError('unreachable', `cannot open ${where}: ${msg}`, { host }, { cause: e });
  }
  return {
    readable: port,
    writable: port,
    where,
    close: () =>
      new Promise<void>((resolve) => {
        if (!port.isOpen) return resolve();
        port.close(() => resolve());
      }),
  };
}
