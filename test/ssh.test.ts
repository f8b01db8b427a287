import { expect, test } from '@playwright/test';
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

test('input goes to stdin and is closed', async () => {
  expect((await ssh.exec('wc -c', { input: 'hello' })).stdout.trim()).toBe('5');
  expect((await ssh.exec('cat')).stdout).toBe('');
});

test('a timeout kills the remote process group', async () => {
  const pidFile = `/tmp/labrig-timeout-${process.pid}`;
  const t0 = Date.now();
  const err = await ssh.exec(`sh -c 'echo $$ > ${pidFile}; sleep 300' & wait`, { timeoutMs: 1000 }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ProductError);
  expect((err as ProductError).kind).toBe('timeout');
  expect(Date.now() - t0).toBeLessThan(10_000);
  const alive = await ssh.exec(aliveCheck(pidFile));
  expect(alive.stdout).toBe('gone\n');
});

test('25 concurrent commands share one connection within the channel limit', async () => {
  const results = await Promise.all(Array.from({ length: 25 }, (_, i) => ssh.exec(`sleep 0.2; echo ${i}`)));
  results.forEach((r, i) => expect(r).toMatchObject({ stdout: `${i}\n`, code: 0 }));
});

test('a changed host key is refused, naming both fingerprints', async () => {
  const wrong = 'SHA256:' + 'A'.repeat(43);
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
  const server = ssh.exec(`timeout 10 socat UNIX-LISTEN:${sock} SYSTEM:'echo pong' `);
  await expect.poll(async () => (await ssh.exec(`test -S ${sock} && echo y`)).stdout, { timeout: 5000 }).toBe('y\n');
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
