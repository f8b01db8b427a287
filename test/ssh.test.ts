import { type AddressInfo, createServer, connect as netConnect } from 'node:net';
import { expect, test } from '@playwright/test';
import { Client, type ClientCallback, type ExecOptions } from 'ssh2';
import { LabError, ProductError } from '../drivers/errors.js';
import { SshSession } from '../drivers/ssh.js';
import { aliveCheck, childrenOf, testSshd } from './helpers/sshd.js';

test.describe.configure({ mode: 'serial' });

let env: Awaited<ReturnType<typeof testSshd>>;
let ssh: SshSession;

test.beforeAll(async () => {
  env = await testSshd();
  ssh = new SshSession('local', env.config);
});
test.afterAll(async () => {
  ssh?.close();
  await env?.cleanup();
});

test('exit codes and stderr are kept apart', async () => {
  const r = await ssh.exec('echo out; echo err >&2; exit 3');
  expect(r).toMatchObject({ stdout: 'out\n', stderr: 'err\n', code: 3, signal: null });
  expect((await ssh.exec('true')).code).toBe(0);
  expect((await ssh.exec('printf "a\\0b"')).stdout).toBe('a\0b');
});

test('a quick command whose exit status is parsed before the caller listens keeps it', async () => {
  // Provoked, not mocked (real sshd, real channels): ssh2's exec callback is held back until the
  // channel has emitted its exit status. On a loaded runner with TCG hosts this ordering happened
  // by itself — one socket read brought the exec's success, the output, the exit status and the
  // close, all parsed before the promise continuation that attaches the listeners ran — and the
  // command came back with its output and "exit status missing (channel closed)".
  const exec = Client.prototype.exec;
  const withOptions = exec as (this: Client, command: string, options: ExecOptions, callback: ClientCallback) => Client;
  const late = function (this: Client, command: string, options: ExecOptions, callback: ClientCallback) {
    return withOptions.call(this, command, options, (err, ch) => {
      if (err) return callback(err, ch);
      ch.once('exit', () => setImmediate(() => callback(undefined, ch)));
    });
  };
  Client.prototype.exec = late as typeof exec;
  try {
    for (let i = 0; i < 3; i++)
      expect(await ssh.exec(`echo quick-${i}; exit ${i + 1}`), `try ${i}`).toMatchObject({
        stdout: `quick-${i}\n`,
        code: i + 1,
        signal: null,
      });
    expect(await ssh.exec('kill -TERM $$'), 'a signal too').toMatchObject({ code: null, signal: 'SIGTERM' });
  } finally {
    Client.prototype.exec = exec;
  }
});

test('raw: the exact bytes, which UTF-8 decoding would have mangled', async () => {
  const r = await ssh.exec("printf '\\377\\376\\000\\200ok'; printf '\\351' >&2", { raw: true });
  expect(r.stdoutBytes).toEqual(Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x6f, 0x6b]));
  expect(r.stderrBytes).toEqual(Buffer.from([0xe9]));
  expect(r.stdout).toContain('\ufffd'); // the decoded text is lossy, which is why raw exists
  expect((await ssh.exec('true')).stdoutBytes).toBeUndefined();
});

test('input goes to stdin and is closed', async () => {
  expect((await ssh.exec('wc -c', { input: 'hello' })).stdout.trim()).toBe('5');
  expect((await ssh.exec('cat')).stdout).toBe('');
});

test("a timeout kills the remote process group, and is the lab's failure", async () => {
  const pidFile = `/tmp/labrig-timeout-${process.pid}`;
  const t0 = Date.now();
  const err = await ssh.exec(`sh -c 'echo $$ > ${pidFile}; sleep 300' & wait`, { timeoutMs: 1000 }).catch((e: unknown) => e);
  // Exec carries the lab's plumbing (lease, kill, boot_id): a hang there did not test the product.
  expect(err).toBeInstanceOf(LabError);
  expect((err as LabError).kind).toBe('lab-timeout');
  expect((err as Error).message).toMatch(/^\[lab:lab-timeout\] host local: SSH exec did not finish in 1000 ms/);
  expect(Date.now() - t0).toBeLessThan(15_000);
  const alive = await ssh.exec(aliveCheck(pidFile));
  expect(alive.stdout).toBe('gone\n');
  // A command that is itself under test (a hook fed on stdin) says so: its hang is the product's.
  const hook = await ssh
    .exec('cat >/dev/null; sleep 300', { input: '<domain/>', timeoutMs: 1000, hangIsProduct: true })
    .catch((e: unknown) => e);
  expect(hook).toBeInstanceOf(ProductError);
  expect((hook as ProductError).kind).toBe('timeout');
});

test('25 concurrent commands share one connection within the channel limit', async () => {
  const results = await Promise.all(Array.from({ length: 25 }, (_, i) => ssh.exec(`sleep 0.2; echo ${i}`)));
  results.forEach((r, i) => expect(r).toMatchObject({ stdout: `${i}\n`, code: 0 }));
});

test('a changed host key is refused, naming both fingerprints', async () => {
  const wrong = `SHA256:${'A'.repeat(43)}`;
  const other = new SshSession('local', { ...env.config, hostKey: wrong });
  const err = await other.exec('true').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(LabError);
  expect((err as LabError).kind).toBe('host-key');
  expect((err as Error).message).toContain(env.config.hostKey);
  expect((err as Error).message).toContain(wrong);
});

test('an unreachable host is a lab failure', async () => {
  const other = new SshSession('nowhere', { ...env.config, port: 1 });
  const err = await other.exec('true').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(LabError);
  expect((err as LabError).kind).toBe('unreachable');
});

test('an sshd that dies after its banner (a host going down) fails the attempt, and the next connect tries again', async () => {
  // Provoked on the real sshd: a relay passes the server's bytes through and holds the client's,
  // so the handshake stops right after sshd's banner; then the sshd process serving that
  // connection is killed. ssh2 emits no error for a close after the banner and stops its own
  // timer: a host reboot that hit this window once hung the wait for the host for 15 minutes.
  const before = new Set(await childrenOf(env.sshd.pid));
  let bannerSeen!: () => void;
  const banner = new Promise<void>((r) => (bannerSeen = r));
  let connections = 0;
  const relay = createServer((client) => {
    const first = ++connections === 1;
    const server = netConnect(env.config.port, '127.0.0.1');
    server.on('data', (d) => {
      client.write(d);
      if (d.toString().startsWith('SSH-')) bannerSeen();
    });
    // the first connection's client bytes are held: sshd never sees the client's banner
    client.on('data', (d) => (first ? undefined : server.write(d)));
    server.on('close', () => client.destroy());
    client.on('close', () => server.destroy());
    client.on('error', () => undefined);
    server.on('error', () => undefined);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  try {
    const port = (relay.address() as AddressInfo).port;
    const dying = new SshSession('dying', { ...env.config, port, connectTimeoutMs: 120_000 });
    const attempt = dying.connect().catch((e: unknown) => e);
    await banner;
    const serving = (await childrenOf(env.sshd.pid)).filter((p) => !before.has(p));
    expect(serving.length, "sshd's process for the relayed connection").toBeGreaterThan(0);
    for (const pid of serving) process.kill(pid, 'SIGKILL');
    const t0 = Date.now();
    const err = await attempt;
    expect(Date.now() - t0, 'settled by the close, not by the 120 s ready timeout').toBeLessThan(60_000);
    expect(err).toBeInstanceOf(LabError);
    expect((err as LabError).kind).toBe('unreachable');
    expect((err as Error).message).toContain('closed during the SSH handshake');
    expect((await dying.exec('echo again')).stdout, 'the next attempt is not stuck behind the failed one').toBe('again\n');
    dying.close();
  } finally {
    relay.close();
  }
});

test('a connection dropped mid-command fails clearly and the next command reconnects', async () => {
  const running = ssh.exec('sleep 30');
  await new Promise((r) => setTimeout(r, 500));
  const sessionProcs = await childrenOf(env.sshd.pid);
  expect(sessionProcs.length).toBeGreaterThan(0);
  for (const pid of sessionProcs) process.kill(pid, 'SIGKILL');
  const err = await running.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(LabError);
  expect((err as LabError).kind).toBe('unreachable');
  expect((err as Error).message).toContain('sleep 30');
  expect((await ssh.exec('echo back')).stdout).toBe('back\n');
});

test('sftp and unix-socket forwarding', async () => {
  const path = `/tmp/labrig-sftp-${process.pid}`;
  await ssh.writeFile(path, 'payload');
  expect((await ssh.readFile(path)).toString()).toBe('payload');
  await ssh.exec(`rm -f ${path}`);
  const sock = `/tmp/labrig-fwd-${process.pid}.sock`;
  // Each exec starts the login shell's rc files: seconds on a loaded runner, so wait in those terms.
  const server = ssh.exec(`timeout 60 socat UNIX-LISTEN:${sock} SYSTEM:'echo pong' `);
  await expect.poll(async () => (await ssh.exec(`test -S ${sock} && echo y`)).stdout, { timeout: 45_000 }).toBe('y\n');
  const stream = await ssh.forwardUnixSocket(sock);
  const data = await new Promise<string>((resolve) => {
    let text = '';
    stream.on('data', (d: Buffer) => (text += d.toString()));
    stream.on('end', () => {
      stream.end();
      resolve(text);
    });
  });
  expect(data).toBe('pong\n');
  await server;
});
