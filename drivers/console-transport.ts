/**
 * How each console kind of the lab schema becomes a byte stream: a tty through
 * serialport, TCP (optionally telnet, as ser2net speaks it), a unix socket (QEMU or
 * libvirt chardev), or a command's stdio on the runner or over SSH.
 */
import { connect, type NetConnectOpts, type Socket } from 'node:net';
import { type Readable, Transform, Writable } from 'node:stream';
import { execa } from 'execa';
import type { ConsoleConfig } from './console-options.js';
import { openSerial } from './console-serial.js';
import { describeSol, openSol } from './console-sol.js';
import { TelnetFilter, telnetEscape } from './console-telnet.js';
import { LabError } from './errors.js';

export interface CommandStream {
  stdin: Writable;
  stdout: Readable;
  close(): Promise<void>;
}

export interface ConsoleDeps {
  /** Runs a command on the host over SSH (kind 'command' with on: 'ssh'). */
  openCommand?: (argv: string[]) => Promise<CommandStream>;
}

export interface Transport {
  readable: Readable | NodeJS.ReadableStream;
  writable?: Writable;
  /** Where the bytes come from, for messages: "serial /dev/ttyUSB0 @115200". */
  where: string;
  close(): Promise<void>;
  /** Why the stream ended on its own (a command's exit status and stderr), if known. */
  endReason?(): Promise<string | undefined>;
}

const CONNECT_TIMEOUT_MS = 10_000;

export function describeConsole(config: ConsoleConfig): string {
  switch (config.kind) {
    case 'serial':
      return `serial ${config.path} @${config.baud}`;
    case 'tcp':
      return `tcp ${config.address}:${config.port}${config.telnet ? ' (telnet)' : ''}`;
    case 'unix':
      return `unix ${config.path}`;
    case 'command':
      return `command on ${config.on}: ${config.argv.join(' ')}`;
    case 'ipmi-sol':
      return describeSol(config);
  }
}

export async function openTransport(config: ConsoleConfig, host: string, deps: ConsoleDeps): Promise<Transport> {
  const where = describeConsole(config);
  switch (config.kind) {
    case 'serial':
      return openSerial(config.path, config.baud, host, where);
    case 'tcp': {
      const socket = await connectSocket({ host: config.address, port: config.port }, host, where);
      return config.telnet ? telnetTransport(socket, where, await refusal(socket, host, where)) : socketTransport(socket, where);
    }
    case 'unix':
      return socketTransport(await connectSocket({ path: config.path }, host, where), where);
    case 'ipmi-sol':
      return openSol(config, { host });
    case 'command':
      if (config.on === 'runner') return spawnCommand(config.argv, host, where);
      if (!deps.openCommand)
        throw new LabError('config', `console "${where}" runs over SSH, but no SSH session was given to open it`, { host });
      try {
        return commandTransport(await deps.openCommand(config.argv), where);
      } catch (e) {
        if (e instanceof LabError) throw e;
        throw new LabError('unreachable', `cannot start console command (${where}): ${(e as Error).message}`, { host }, { cause: e });
      }
  }
}

function connectSocket(target: NetConnectOpts, host: string, where: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(target);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new LabError('unreachable', `cannot connect to ${where}: no answer in ${CONNECT_TIMEOUT_MS / 1000}s`, { host }));
    }, CONNECT_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new LabError('unreachable', `cannot connect to ${where}: ${e.code ?? e.message}`, { host }, { cause: e }));
    });
  });
}

function closeSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(() => socket.destroy(), 1000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.end();
  });
}

function socketTransport(socket: Socket, where: string): Transport {
  return { readable: socket, writable: socket, where, close: () => closeSocket(socket) };
}

/** ser2net's answer to a second client when the port allows one (max-connections: 1, kickolduser off). */
export const SER2NET_IN_USE = /Port already in use/;
/** How long a telnet console's server has to refuse us before the stream counts as ours. */
const REFUSAL_WINDOW_MS = 500;

/**
 * ser2net refuses a connection by sending one line and closing: a port held by another client
 * ("Port already in use"), a device it cannot open ("Device open failure"). Whatever arrives
 * in the first moments is kept and handed on, so an accepted console loses no byte.
 */
async function refusal(socket: Socket, host: string, where: string): Promise<Buffer[]> {
  const early: Buffer[] = [];
  const onData = (b: Buffer) => early.push(b);
  socket.on('data', onData);
  const closed = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), REFUSAL_WINDOW_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  socket.off('data', onData);
  socket.pause();
  const text = new TelnetFilter().feed(Buffer.concat(early)).data.toString('latin1').trim();
  if (SER2NET_IN_USE.test(text))
    throw new LabError('console-busy', `${where} answered "${text}": another client holds the console`, { host });
  if (closed) throw new LabError('unreachable', `${where} closed the connection at once${text ? `, saying "${text}"` : ''}`, { host });
  return early;
}

function telnetTransport(socket: Socket, where: string, early: Buffer[] = []): Transport {
  const filter = new TelnetFilter();
  const readable = new Transform({
    transform(chunk: Buffer, _enc, done) {
      const { data, reply } = filter.feed(chunk);
      if (reply.length && !socket.destroyed) socket.write(reply);
      done(null, data.length ? data : undefined);
    },
  });
  socket.on('error', (e) => readable.destroy(e));
  for (const b of early) readable.write(b);
  socket.pipe(readable);
  socket.resume();
  const writable = new Writable({
    write(chunk: Buffer, _enc, done) {
      socket.write(telnetEscape(chunk), done);
    },
  });
  return { readable, writable, where, close: () => closeSocket(socket) };
}

function commandTransport(cs: CommandStream, where: string): Transport {
  return { readable: cs.stdout, writable: cs.stdin, where, close: () => cs.close() };
}

async function spawnCommand(argv: readonly string[], host: string, where: string): Promise<Transport> {
  const [file, ...args] = argv;
  if (!file) throw new LabError('config', `console command is empty`, { host });
  const sub = execa(file, args, {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    forceKillAfterDelay: 2000,
  });
  // stderr is not console output (ipmitool and virsh put their own complaints there);
  // its last few KB explain why the console ended.
  let stderr = '';
  sub.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-4096)));
  const started = await Promise.race([new Promise<true>((resolve) => sub.once('spawn', () => resolve(true))), sub.then((r) => r)]);
  if (started !== true)
    throw new LabError('unreachable', `cannot start console command (${where}): ${started.shortMessage ?? started.message}`, { host });
  return {
    readable: sub.stdout,
    writable: sub.stdin,
    where,
    async close() {
      if (sub.exitCode === null && sub.signalCode === null) sub.kill('SIGTERM');
      await sub;
    },
    async endReason() {
      const r = await sub;
      const status = r.exitCode !== undefined ? `exit code ${r.exitCode}` : `signal ${r.signal ?? '?'}`;
      return `command ended with ${status}${stderr.trim() ? `: ${stderr.trim()}` : ''}`;
    },
  };
}
