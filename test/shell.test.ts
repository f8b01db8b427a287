import { expect, test } from '@playwright/test';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Console } from '../drivers/console.js';
import { ProductError } from '../drivers/errors.js';
import { Shell } from '../drivers/shell.js';
import { openSshShell } from '../drivers/ssh-shell.js';
import { SshSession } from '../drivers/ssh.js';
import { startPtyProgram } from './helpers/pty.js';
import { aliveCheck, testSshd } from './helpers/sshd.js';

const login = { user: 'root', prompt: /[#$] ?$/m, timeoutMs: 20_000 };

test.describe('shell over a serial console (a real interactive sh on a pty)', () => {
  test('100 commands keep exit codes and output while something else writes to the tty', async () => {
    const pty = await startPtyProgram('/bin/sh -i');
    const dir = await mkdtemp(join(tmpdir(), 'labrig-shell-'));
    const console = await Console.open({ kind: 'serial', path: pty.path, baud: 115200 }, { name: 'pty', logPath: join(dir, 'console.log') });
    try {
      const shell = await Shell.overConsole(console, login, { host: 'pty' });
      // A writer that shares the tty, as the kernel does with printk on a serial console.
      await shell.run('(while :; do echo "[    1.000000] noise from elsewhere"; sleep 0.02; done) >/dev/tty 2>&1 &');
      for (let i = 0; i < 100; i++) {
        const r = await shell.run(`echo value-${i}; (exit ${i % 7})`);
        expect(r.code, `command ${i}`).toBe(i % 7);
        expect(r.stdout, `command ${i}`).toContain(`value-${i}`);
      }
      await shell.run('kill %1 2>/dev/null; kill $(jobs -p) 2>/dev/null; true');
      const log = await readFile(join(dir, 'console.log'), 'utf8').catch(() => '');
      expect(log.length).toBeGreaterThan(0);
    } finally {
      await console.close();
      await pty.stop();
    }
  });

  test('a command that hangs is interrupted with ^C and the shell resynchronises', async () => {
    const pty = await startPtyProgram('/bin/sh -i');
    const dir = await mkdtemp(join(tmpdir(), 'labrig-shell-'));
    const console = await Console.open({ kind: 'serial', path: pty.path, baud: 115200 }, { name: 'pty', logPath: join(dir, 'console.log') });
    try {
      const shell = await Shell.overConsole(console, login, { host: 'pty' });
      const err = await shell.run('sleep 60', { timeoutMs: 1000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProductError);
      expect((err as ProductError).kind).toBe('timeout');
      expect((await shell.run('echo after')).stdout.trim()).toBe('after');
    } finally {
      await console.close();
      await pty.stop();
    }
  });
});

test.describe('shell over an SSH channel (persistent sh, real sshd)', () => {
  test.describe.configure({ mode: 'serial' });
  let env: Awaited<ReturnType<typeof testSshd>>;
  let ssh: SshSession;
  let shell: Shell;

  test.beforeAll(async () => {
    env = await testSshd();
    ssh = new SshSession('local', env.config);
    shell = await openSshShell(ssh, await mkdtemp(join(tmpdir(), 'labrig-sshshell-')));
  });
  test.afterAll(async () => {
    await shell?.close();
    ssh?.close();
    await env?.cleanup();
  });

  test('stdout, stderr and exit code stay apart; stdin is /dev/null', async () => {
    expect(await shell.run('echo out; echo err >&2; exit 4')).toMatchObject({ stdout: 'out\n', stderr: 'err\n', code: 4 });
    expect(await shell.run('printf "no newline"')).toMatchObject({ stdout: 'no newline', stderr: '', code: 0 });
    expect((await shell.run('cat; echo done')).stdout).toBe('done\n');
    expect((await shell.run('seq 1 20000')).stdout.split('\n')).toHaveLength(20001);
  });

  test('a timeout kills only that command; the shell goes on', async () => {
    const pidFile = `/tmp/labrig-shell-timeout-${process.pid}`;
    const err = await shell.run(`sh -c 'echo $$ > ${pidFile}; exec sleep 60'`, { timeoutMs: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProductError);
    expect((err as ProductError).kind).toBe('timeout');
    expect((await shell.run(aliveCheck(pidFile))).stdout).toBe('gone\n');
    expect((await shell.run('echo still here')).stdout).toBe('still here\n');
  });

  test('concurrent callers are serialised, each gets its own result', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => shell.run(`echo ${i}; exit ${i % 3}`)));
    results.forEach((r, i) => expect(r).toMatchObject({ stdout: `${i}\n`, code: i % 3 }));
  });
});
