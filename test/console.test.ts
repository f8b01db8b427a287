/**
 * The console driver against real byte streams: socat pty pairs opened through
 * serialport, unix and TCP servers started here, a command on the runner, and a command
 * over a real sshd. Each test cleans up what it starts.
 */

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { Client } from 'ssh2';
import { type CommandStream, Console, stripAnsi } from '../drivers/console.js';
import { consoleOptionsSchema } from '../drivers/console-options.js';
import { LabError, ProductError } from '../drivers/errors.js';
import { openPeer, type PtyPeer, startPtyPair, startPtyProgram } from './helpers/pty.js';
import { testSshd } from './helpers/sshd.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const serial = (path: string) => consoleOptionsSchema.parse({ kind: 'serial', path });

let dir = '';
// Teardown registered where the mess is made, run in reverse order whether the test passed or not.
let teardown: (() => Promise<unknown> | unknown)[] = [];
function defer<T>(thing: T, undo: (t: T) => Promise<unknown> | unknown): T {
  teardown.push(() => undo(thing));
  return thing;
}
test.beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'labrig-console-'));
  teardown = [];
});
test.afterEach(async () => {
  const errors: unknown[] = [];
  for (const undo of teardown.reverse())
    await Promise.resolve()
      .then(undo)
      .catch((e: unknown) => errors.push(e));
  await rm(dir, { recursive: true, force: true });
  if (errors.length) throw errors[0];
});

/** A pty pair, the device end opened by the test, and the other end as a serial Console. */
async function board(name: string, logPath: string): Promise<{ con: Console; peer: PtyPeer; a: string }> {
  const pty = defer(await startPtyPair(), (p) => p.stop());
  const peer = defer(await openPeer(pty.b), (p) => p.close());
  const con = defer(await Console.open(serial(pty.a), { name, logPath }), (c) => c.close());
  return { con, peer, a: pty.a };
}

async function caught(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

/** A node net server that remembers its connections, so teardown can end them. */
function serve(onConnection: (s: Socket) => void): { server: Server; sockets: Socket[]; stop(): Promise<void> } {
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    onConnection(s);
  });
  return {
    server,
    sockets,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        if (!server.listening) return resolve();
        server.close(() => resolve());
      }),
  };
}

test('serial pty: drains before anyone reads, expects, writes back, and refuses a second opener', async () => {
  const logPath = join(dir, 'board.log');
  const { con, peer, a } = await board('board', logPath);
  await peer.write('U-Boot 2024.01\r\nStarting kernel ...\r\n');
  await expect.poll(async () => readFile(logPath, 'utf8'), { timeout: 5000 }).toContain('Starting kernel');
  await peer.write('Debian GNU/Linux 12 board ttyS0\r\n\r\nboard login: ');
  const r = await con.expect(/(\S+) login: $/, { timeoutMs: 5000 });
  expect(r.match[1]).toBe('board');
  expect(r.before).toContain('U-Boot 2024.01\r\n');
  expect(r.cursor).toBe(con.received);
  await con.write('root\n');
  await peer.waitFor('root\n');

  const busy = await caught(Console.open(serial(a), { name: 'board', logPath: join(dir, 'second.log') }));
  expect(busy).toBeInstanceOf(LabError);
  expect((busy as LabError).kind).toBe('console-busy');
  expect(busy.message).toContain(a);
  await con.close();
  expect(await readFile(logPath, 'utf8')).toBe(
    'U-Boot 2024.01\r\nStarting kernel ...\r\nDebian GNU/Linux 12 board ttyS0\r\n\r\nboard login: ',
  );
});

test('serial: the far end going away fails a pending expect as unreachable, at once', async () => {
  const pty = defer(await startPtyPair(), (p) => p.stop());
  const con = defer(await Console.open(serial(pty.a), { name: 'board', logPath: join(dir, 'gone.log') }), (c) => c.close());
  const t0 = performance.now();
  const waiting = caught(con.expect('login:', { timeoutMs: 30_000, what: 'the login prompt' }));
  await pty.stop(); // the USB-serial adapter is unplugged
  const e = await waiting;
  expect(performance.now() - t0).toBeLessThan(5000);
  expect((e as LabError).kind).toBe('unreachable');
  expect(e.message).toContain('console closed while waiting for the login prompt');
});

test('1-byte delivery, CRLF, ANSI colours and a UTF-8 character split across writes', async () => {
  const { con, peer } = await board('board', join(dir, 'bytes.log'));
  const chunks: Buffer[] = [];
  con.onBytes((b) => chunks.push(b));
  // Filler first, so the byte-by-byte part is searched through the large-window path too.
  const filler = `${'[    0.000000] early boot noise\r\n'.repeat(200)}`;
  await peer.write(filler);
  await con.expect('noise\r\n', { timeoutMs: 5000 });
  const line = 'Welcome to \x1b[1;32mDebian GNU/Linux 12\x1b[0m!\r\n[  OK  ] Reached target \x1b[1mMulti-User\x1b[0m.\r\n';
  const waiting = con.expect(/Reached target (.*)\.\r\n/, { timeoutMs: 10_000, from: 0 });
  const before = chunks.length;
  for (const byte of Buffer.from(line)) {
    await peer.write(Buffer.from([byte]));
    await sleep(1);
  }
  const t0 = performance.now();
  const r = await waiting;
  expect(performance.now() - t0).toBeLessThan(500); // found as it came, not at the deadline
  expect(chunks.length - before).toBeGreaterThan(line.length / 8); // it really came in small pieces (a busy machine merges some)
  expect(stripAnsi(r.match[1]!)).toBe('Multi-User');
  expect(stripAnsi(r.before)).toBe(`${filler}Welcome to Debian GNU/Linux 12!\r\n[  OK  ] `);
  // A literal string matches through colour codes only where it has none inside.
  expect((await con.expect('!', { from: filler.length })).match.index).toBe(filler.length + line.indexOf('!'));

  const arrow = Buffer.from('→'); // 3 bytes: E2 86 92
  const start = con.received;
  await peer.write(Buffer.concat([Buffer.from('temp 42'), arrow.subarray(0, 2)]));
  await sleep(400); // long enough that even a busy machine delivers the first half alone
  await peer.write(Buffer.concat([arrow.subarray(2), Buffer.from('°C\r\n')]));
  const t = await con.expect(/temp (\d+)(.)°C/, { timeoutMs: 5000 });
  expect(chunks.some((c) => c.at(-1) === 0x86)).toBe(true); // the character was split between reads
  expect(t.match[2]).toBe('→');
  expect(con.text(start)).toBe('temp 42→°C\r\n');
});

test('no byte lost: 200 KB of numbered lines while expects run; the log equals what was sent', async () => {
  const lines = Array.from({ length: 6000 }, (_, i) => `line ${String(i).padStart(6, '0')} ${'x'.repeat(i % 40)}\r\n`);
  const sent = lines.join('');
  expect(sent.length).toBeGreaterThan(195_000);
  const logPath = join(dir, 'flood.log');
  const { con, peer } = await board('board', logPath);
  const sending = (async () => {
    for (let i = 0; i < lines.length; i += 50) {
      await peer.write(lines.slice(i, i + 50).join(''));
      if (i % 500 === 0) await sleep(5);
    }
  })();
  let seen = '';
  for (let n = 250; n < 6000; n += 250) {
    const r = await con.expect(new RegExp(`line ${String(n).padStart(6, '0')} `), { timeoutMs: 20_000 });
    seen += r.before + r.match[0];
  }
  await sending;
  const last = await con.expect(`line 005999 ${'x'.repeat(5999 % 40)}\r\n`, { timeoutMs: 20_000 });
  seen += last.before + last.match[0];
  expect(seen).toBe(sent); // every char matched exactly once, in order
  expect(con.text(0)).toBe(sent);
  await con.close();
  const logged = await readFile(logPath);
  expect(logged.length).toBe(Buffer.byteLength(sent));
  expect(logged.equals(Buffer.from(sent))).toBe(true);
});

test('a kernel panic ends a 60 s wait at once, naming the log file', async () => {
  const logPath = join(dir, 'panic.log');
  const { con, peer } = await board('emu-mini', logPath);
  {
    const t0 = performance.now();
    const waiting = caught(con.expect(/login: /, { timeoutMs: 60_000, what: 'the login prompt' }));
    await peer.write(
      '[    1.234] VFS: Cannot open root device\r\n[    1.235] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\r\n',
    );
    const e = await waiting;
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(e).toBeInstanceOf(ProductError);
    expect((e as ProductError).kind).toBe('panic');
    expect(e.message).toContain('host emu-mini');
    expect(e.message).toContain(`full log: ${logPath}`);
    expect(e.message).toContain('the login prompt');
    expect(e.message).toContain('Kernel panic - not syncing: VFS: Unable to mount root fs');
    expect(e.message).toContain('Cannot open root device'); // the tail
    // A test that provokes a panic can wait for its words; an extra failOn also applies.
    await peer.write('Kernel panic - not syncing: sysrq triggered crash\r\n(XEN) FATAL TRAP: vec 14\r\n');
    await con.expect('Kernel panic - not syncing: sysrq', { timeoutMs: 5000 });
    const xen = await caught(con.expect('never', { timeoutMs: 5000 }));
    expect((xen as ProductError).kind).toBe('panic');
    await peer.write('watchdog: hard LOCKUP on cpu 1\r\n');
    const extra = await caught(con.expect('never', { timeoutMs: 5000, failOn: [/hard LOCKUP/] }));
    expect(extra.message).toContain('watchdog: hard LOCKUP on cpu 1');
  }
});

test('a timeout names what it waited for, the log path and the last lines', async () => {
  const logPath = join(dir, 'slow.log');
  const { con, peer } = await board('slowboard', logPath);
  {
    await peer.write('\x1b[0mBooting\r\nstep 1\r\nstep 2 of boot\r\n');
    await con.expect('step 2', { timeoutMs: 5000 });
    const e = await caught(con.expect(/login: /, { timeoutMs: 300, what: 'the login prompt' }));
    expect(e).toBeInstanceOf(ProductError);
    expect((e as ProductError).kind).toBe('timeout');
    expect(e.message).toContain('waited 0.3s for the login prompt');
    expect(e.message).toContain(`full log: ${logPath}`);
    expect(e.message).toMatch(/\| step 1\n.*\| step 2 of boot/);
    expect(e.message).not.toContain('\x1b');
    expect(con.tail(2)).toBe('step 1\nstep 2 of boot');
  }
});

test('unix socket console; the peer hanging up fails a pending expect as unreachable', async () => {
  const path = join(dir, 'serial0.sock');
  const server = defer(
    serve((s) => {
      s.write('QEMU chardev says hello\r\n');
      s.on('data', (b) => s.write(`echo:${b.toString()}`));
    }),
    (sv) => sv.stop(),
  );
  await new Promise<void>((r) => server.server.listen(path, () => r()));
  const con = defer(
    await Console.open(consoleOptionsSchema.parse({ kind: 'unix', path }), { name: 'vm', logPath: join(dir, 'unix.log') }),
    (c) => c.close(),
  );
  await con.expect('hello', { timeoutMs: 5000 });
  await con.write('ping\n');
  await con.expect('echo:ping\n', { timeoutMs: 5000 });
  const waiting = caught(con.expect('login:', { timeoutMs: 10_000 }));
  server.sockets[0]!.end('bye\r\n');
  const e = await waiting;
  expect(e).toBeInstanceOf(LabError);
  expect((e as LabError).kind).toBe('unreachable');
  expect(e.message).toContain('console closed while waiting for "login:"');
  expect(con.text(0)).toContain('bye\r\n'); // what came before the hang-up is kept
  expect(con.closed).toBe(true);
  expect(await caught(con.write('x'))).toBeInstanceOf(LabError);

  const missing = await caught(
    Console.open(consoleOptionsSchema.parse({ kind: 'unix', path: join(dir, 'none.sock') }), { name: 'vm', logPath: join(dir, 'x.log') }),
  );
  expect((missing as LabError).kind).toBe('unreachable');
  expect(missing.message).toContain('none.sock');
});

test("a console that never sent one byte: the wait is the lab's failure (dead ser2net, a socket another client holds)", async () => {
  // ser2net whose serial side is dead: it answers telnet negotiation, then nothing.
  const ser2net = defer(
    serve((s) => s.write(Buffer.from([255, 251, 1, 255, 251, 3]))),
    (sv) => sv.stop(),
  );
  await new Promise<void>((r) => ser2net.server.listen(0, '127.0.0.1', () => r()));
  const port = (ser2net.server.address() as { port: number }).port;
  const dead = defer(
    await Console.open(consoleOptionsSchema.parse({ kind: 'tcp', address: '127.0.0.1', port, telnet: true }), {
      name: 'dead',
      logPath: join(dir, 'dead.log'),
    }),
    (c) => c.close(),
  );
  const e = await caught(dead.expect(/login: /, { timeoutMs: 500, what: 'the login prompt' }));
  expect(e).toBeInstanceOf(LabError);
  expect((e as LabError).kind).toBe('console-silent');
  expect(e.message).toMatch(
    /^\[lab:console-silent\] host dead: waited 0.5s for the login prompt on tcp 127.0.0.1:\d+ \(telnet\), and not one byte has arrived since it opened/,
  );

  // A chardev socket like QEMU's: it serves one client and leaves the next in its backlog.
  const path = join(dir, 'held.sock');
  const holder = spawn('python3', ['-c', HOLDING_SERVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  defer(holder, (h) => h.kill('SIGKILL'));
  await new Promise<void>((r) => holder.stdout.once('data', () => r()));
  const first = defer(connect(path), (s) => s.destroy());
  await new Promise<void>((r) => first.once('data', () => r()));
  const second = defer(
    await Console.open(consoleOptionsSchema.parse({ kind: 'unix', path }), { name: 'held', logPath: join(dir, 'held.log') }),
    (c) => c.close(),
  );
  const held = await caught(second.expect(/login: /, { timeoutMs: 500, what: 'the login prompt' }));
  expect((held as LabError).kind).toBe('console-silent');
  expect(held.message).toContain('the console is dead or another client holds it');

  // A console that spoke and then went quiet is the product's silence, not the lab's.
  const spoke = defer(
    await Console.open(consoleOptionsSchema.parse({ kind: 'tcp', address: '127.0.0.1', port }), {
      name: 'spoke',
      logPath: join(dir, 'spoke.log'),
    }),
    (c) => c.close(),
  );
  ser2net.sockets.at(-1)!.write('U-Boot 2024.01\r\n');
  await spoke.expect('U-Boot', { timeoutMs: 5000 });
  const quiet = await caught(spoke.expect(/login: /, { timeoutMs: 300 }));
  expect((quiet as ProductError).kind).toBe('timeout');
});

/** Listens with a backlog, accepts one client, greets it, and never accepts another. */
const HOLDING_SERVER = `
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(4)
print("listening", flush=True)
c, _ = s.accept(); c.send(b"first client\\r\\n")
time.sleep(120)
`;

test('TCP console, plain and telnet (ser2net): IAC negotiation answered and stripped', async () => {
  const IAC = 255,
    WILL = 251,
    WONT = 252,
    DO = 253,
    SB = 250,
    SE = 240;
  const got: Buffer[] = [];
  const server = defer(
    serve(async (s) => {
      s.setNoDelay(true);
      s.on('data', (b) => got.push(b));
      s.write(Buffer.from([IAC, WILL, 1, IAC, WILL, 3, IAC, DO, 24, IAC, SB, 24, 1, IAC, SE]));
      s.write(Buffer.from('ser2net port 3001\r\n'));
      s.write(Buffer.from([IAC]));
      await sleep(30); // an IAC split across segments
      s.write(Buffer.concat([Buffer.from([WILL, 3]), Buffer.from('byte '), Buffer.from([IAC, IAC]), Buffer.from(' end\r\nlogin: ')]));
    }),
    (sv) => sv.stop(),
  );
  await new Promise<void>((r) => server.server.listen(0, '127.0.0.1', () => r()));
  const port = (server.server.address() as { port: number }).port;
  const logPath = join(dir, 'telnet.log');
  const con = defer(
    await Console.open(consoleOptionsSchema.parse({ kind: 'tcp', address: '127.0.0.1', port, telnet: true }), {
      name: 'x86-pmem',
      logPath,
    }),
    (c) => c.close(),
  );
  await con.expect('login: ', { timeoutMs: 5000 });
  expect(con.text(0)).toBe('ser2net port 3001\r\nbyte \ufffd end\r\nlogin: ');
  await con.write(Buffer.from([0x41, IAC, 0x42]));
  await expect.poll(() => Buffer.concat(got).includes(Buffer.from([0x41, IAC, IAC, 0x42])), { timeout: 5000 }).toBe(true);
  const answers = Buffer.concat(got);
  expect(answers.includes(Buffer.from([IAC, DO, 1]))).toBe(true); // accept the server's echo
  expect(answers.includes(Buffer.from([IAC, DO, 3]))).toBe(true); // and suppress-go-ahead, once
  expect(answers.indexOf(Buffer.from([IAC, DO, 3]))).toBe(answers.lastIndexOf(Buffer.from([IAC, DO, 3])));
  expect(answers.includes(Buffer.from([IAC, WONT, 24]))).toBe(true); // refuse terminal-type
  await con.close();
  expect(
    (await readFile(logPath)).equals(Buffer.from([...Buffer.from('ser2net port 3001\r\nbyte '), IAC, ...Buffer.from(' end\r\nlogin: ')])),
  ).toBe(true);

  const plain = defer(
    await Console.open(consoleOptionsSchema.parse({ kind: 'tcp', address: '127.0.0.1', port }), {
      name: 'raw',
      logPath: join(dir, 'raw.log'),
    }),
    (c) => c.close(),
  );
  await plain.expect('login: ', { timeoutMs: 5000 });
  // Without telnet the bytes stay as they came; 0xFF 0xFB are not UTF-8, so U+FFFD each.
  expect(plain.text(0).startsWith('\ufffd\ufffd\u0001')).toBe(true);
  await plain.close();
  await server.stop();
  const refused = await caught(
    Console.open(consoleOptionsSchema.parse({ kind: 'tcp', address: '127.0.0.1', port }), { name: 'raw', logPath: join(dir, 'r.log') }),
  );
  expect((refused as LabError).kind).toBe('unreachable');
  expect(refused.message).toContain(`127.0.0.1:${port}`);
});

test('command console on the runner: stdio is the console; its exit explains a failed wait', async () => {
  const command = (argv: string[]) => consoleOptionsSchema.parse({ kind: 'command', argv });
  const cat = defer(
    await Console.open(command(['sh', '-c', 'echo "[SOL Session operational]"; exec cat']), {
      name: 'kunpeng',
      logPath: join(dir, 'sol.log'),
    }),
    (c) => c.close(),
  );
  await cat.expect('SOL Session operational', { timeoutMs: 5000 });
  await cat.write('hello cat\n');
  await cat.expect('hello cat\n', { timeoutMs: 5000 });

  const dying = defer(
    await Console.open(command(['sh', '-c', 'echo starting; echo "Error: Unable to establish IPMI session" >&2; exit 3']), {
      name: 'kunpeng',
      logPath: join(dir, 'sol2.log'),
    }),
    (c) => c.close(),
  );
  const e = await caught(dying.expect('login:', { timeoutMs: 10_000 }));
  expect((e as LabError).kind).toBe('unreachable');
  expect(e.message).toContain('exit code 3');
  expect(e.message).toContain('Unable to establish IPMI session');
  expect(e.message).toContain('| starting');

  const missing = await caught(Console.open(command(['/nonexistent/ipmitool']), { name: 'k', logPath: join(dir, 'm.log') }));
  expect((missing as LabError).kind).toBe('unreachable');
});

test('command console over a real SSH connection (deps.openCommand)', async () => {
  const { sshd, config } = defer(await testSshd(), (t) => t.cleanup());
  const client = defer(new Client(), (c) => c.end());
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve()).once('error', reject);
    client.connect({ host: config.address, port: config.port, username: config.user, privateKey: readFileSync(sshd.identityFile) });
  });
  // The remote end gets a command line: each argument quoted for its shell.
  const quote = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;
  const openCommand = (argv: string[]): Promise<CommandStream> =>
    new Promise((resolve, reject) =>
      client.exec(argv.map(quote).join(' '), (err, ch) => {
        if (err) return reject(err);
        const done = new Promise<void>((r) => ch.once('close', () => r()));
        resolve({ stdin: ch, stdout: ch, close: async () => (ch.close(), done) });
      }),
    );
  const cfg = consoleOptionsSchema.parse({ kind: 'command', on: 'ssh', argv: ['sh', '-c', "echo 'remote console'; exec cat"] });
  const noSsh = await caught(Console.open(cfg, { name: 'local', logPath: join(dir, 'n.log') }));
  expect((noSsh as LabError).kind).toBe('config');
  const con = defer(await Console.open(cfg, { name: 'local', logPath: join(dir, 'ssh.log') }, { openCommand }), (c) => c.close());
  await con.expect('remote console', { timeoutMs: 5000 });
  await con.write('over ssh\n');
  await con.expect('over ssh\n', { timeoutMs: 5000 });
});

test('a shell on a pty (startPtyProgram) answers through a serial console', async () => {
  const prog = defer(await startPtyProgram('sh -i'), (p) => p.stop());
  const con = defer(await Console.open(serial(prog.path), { name: 'getty', logPath: join(dir, 'sh.log') }), (c) => c.close());
  await con.write('echo $((6*7))\n');
  const r = await con.expect(/\b42\r?\n/, { timeoutMs: 5000, what: 'the answer' });
  expect(r.before).toContain('echo $((6*7))'); // the tty echoes, as a getty's would
});
