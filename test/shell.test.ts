import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { Console } from '../drivers/console.js';
import { DEFAULT_PROMPT } from '../drivers/console-options.js';
import { LabError, ProductError } from '../drivers/errors.js';
import { Shell } from '../drivers/shell.js';
import { assertShellText, ttyCommand, ttyOutput } from '../drivers/shell-frame.js';
import { SshSession } from '../drivers/ssh.js';
import { openSshShell } from '../drivers/ssh-shell.js';
import { hostileCases, oracle, ttyOracle, withoutShellMessages } from './helpers/hostile.js';
import { localPipeShell } from './helpers/local-shell.js';
import { startPtyProgram } from './helpers/pty.js';
import { aliveCheck, testSshd } from './helpers/sshd.js';

const login = { user: 'root', prompt: new RegExp(DEFAULT_PROMPT, 'm'), timeoutMs: 20_000 };

/** An interactive shell on its own pty, logged into through a serial Console, as on a board's UART. */
async function consoleShell(program: string): Promise<{ shell: Shell; console: Console; stop(): Promise<void> }> {
  const pty = await startPtyProgram(program);
  const dir = await mkdtemp(join(tmpdir(), 'labrig-shell-'));
  const console = await Console.open({ kind: 'serial', path: pty.path, baud: 115200 }, { name: 'pty', logPath: join(dir, 'console.log') });
  const stop = async (): Promise<void> => {
    await console.close();
    await pty.stop();
  };
  try {
    // A prompt printed before the Console opened the pty is lost, and a ^C (login's wake-up)
    // before sh handles SIGINT kills it: a newline waits in the tty until sh reads it.
    await console.write('\n');
    await console.expect(login.prompt, { timeoutMs: 10_000, what: `${program} to start` });
    return { shell: await Shell.overConsole(console, login, { host: 'pty' }), console, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

test.describe('the framing, as text', () => {
  test('a console command is typed in short lines that rebuild it, none holding a marker or a control byte', () => {
    const n = 'a1b2c3d4e5f6';
    const command = `x='${'A'.repeat(3000)}'\ncat <<EOF\n'\x03\x04\x7f\rdone\nEOF\necho ${'é'.repeat(400)}`;
    const typed = ttyCommand(n, command);
    const lines = typed.split('\n').slice(0, -1);
    expect(lines.length).toBeGreaterThan(10);
    for (const line of lines) {
      expect(Buffer.byteLength(line)).toBeLessThanOrEqual(1024);
      expect(line).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
      expect(line).not.toContain(`${n}:`);
    }
    expect(lines.at(-1)).toBe(`__lr ${n} "$__lc"`);
    expect(ttyCommand(n, 'echo hi')).toBe(`__lr ${n} 'echo hi'\n`);
  });

  test('console output is the tagged lines only, joined back exactly', () => {
    const n = 'feedface0001';
    const text = `noise\r\n${n}:O:a\n[  1.0] kernel line\r\nhalf a foreign line ${n}:O:  b \r\n${n}:O:\n`;
    expect(ttyOutput(n, text)).toBe('a\n  b \n');
    expect(ttyOutput(n, `${n}:O:no newline\n`)).toBe('no newline');
    expect(ttyOutput(n, `${n}:O:\n`)).toBe('');
  });

  test('a NUL byte, which no shell can take, is refused naming the host', () => {
    expect(() => assertShellText('echo a\0b', 'board-7')).toThrow(/host board-7: a shell command cannot contain a NUL byte/);
  });
});

test.describe('the pipe framing on every POSIX shell at hand', () => {
  for (const argv of [['dash'], ['busybox', 'sh'], ['bash', '--posix']]) {
    test(`${argv.join(' ')}: hostile commands answer as \`-c\` does, and the next command runs clean`, async () => {
      const { shell, stop } = await localPipeShell(argv, await mkdtemp(join(tmpdir(), 'labrig-shell-')));
      try {
        const wrong: string[] = [];
        for (const c of hostileCases(50)) {
          const want = await oracle(argv, c);
          const r = await shell.run(c.command, { raw: true, timeoutMs: 30_000 });
          if (r.code !== want.code || !r.stdoutBytes!.equals(want.stdout))
            wrong.push(`${c.name}: exit ${r.code} (want ${want.code}), ${JSON.stringify(r.stdout.slice(0, 80))}`);
          const next = await shell.run('echo next');
          if (next.stdout !== 'next\n' || next.stderr !== '' || next.code !== 0) wrong.push(`after ${c.name}: ${JSON.stringify(next)}`);
        }
        expect(wrong).toEqual([]);
      } finally {
        await stop();
      }
    });
  }
});

test.describe('shell over an SSH channel (persistent sh, real sshd)', () => {
  test.describe.configure({ mode: 'serial' });
  let env: Awaited<ReturnType<typeof testSshd>>;
  let ssh: SshSession;
  let shell: Shell;
  let logDir: string;

  test.beforeAll(async () => {
    env = await testSshd();
    ssh = new SshSession('local', env.config);
    logDir = await mkdtemp(join(tmpdir(), 'labrig-sshshell-'));
    shell = await openSshShell(ssh, logDir);
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
    expect((await shell.run("printf 'ends in CR\\r'")).stdout).toBe('ends in CR\r');
  });

  test("a background job's late output reaches no later command", async () => {
    await shell.run('(sleep 0.3; echo late-out; echo late-err >&2) & (sleep 0.6; echo later) & echo now');
    const seen: string[] = [];
    const until = Date.now() + 1500;
    for (let i = 0; Date.now() < until; i++) {
      const r = await shell.run(`echo ${i}`);
      seen.push(r.stdout + r.stderr);
      expect(r).toMatchObject({ stdout: `${i}\n`, stderr: '', code: 0 });
    }
    expect(seen.length).toBeGreaterThan(5);
  });

  test('raw: binary and 1 MiB of output, byte for byte', async () => {
    const bin = await shell.run("printf '\\000\\001\\377\\376\\200\\r\\n'; printf '\\351' >&2", { raw: true });
    expect(bin.stdoutBytes).toEqual(Buffer.from([0, 1, 0xff, 0xfe, 0x80, 0x0d, 0x0a]));
    expect(bin.stderrBytes).toEqual(Buffer.from([0xe9]));
    expect((await shell.run('true')).stdoutBytes).toBeUndefined();
    const big = await shell.run('f=$(mktemp); head -c 1048576 /dev/urandom >"$f"; sha256sum <"$f" >&2; cat "$f"; rm -f "$f"', {
      raw: true,
    });
    const { createHash } = await import('node:crypto');
    expect(big.stdoutBytes!.length).toBe(1048576);
    expect(big.stderr.split(' ')[0]).toBe(createHash('sha256').update(big.stdoutBytes!).digest('hex'));
  });

  test("a timeout kills only that command and is the lab's failure (the product's when the command is under test); the shell goes on", async () => {
    const pidFile = `/tmp/labrig-shell-timeout-${process.pid}`;
    const err = await shell.run(`sh -c 'echo $$ > ${pidFile}; exec sleep 60'`, { timeoutMs: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LabError);
    expect((err as LabError).kind).toBe('lab-timeout');
    expect((err as Error).message).toMatch(
      /^\[lab:lab-timeout\] host local: command did not finish in 1000 ms; it and its children were killed/,
    );
    const hung = await shell.run('sleep 60', { timeoutMs: 1000, hangIsProduct: true }).catch((e: unknown) => e);
    expect((hung as ProductError).kind).toBe('timeout');
    expect(hung).toBeInstanceOf(ProductError);
    expect((await shell.run(aliveCheck(pidFile))).stdout).toBe('gone\n');
    expect((await shell.run('echo still here')).stdout).toBe('still here\n');
  });

  test('concurrent callers are serialised, each gets its own result', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => shell.run(`echo ${i}; exit ${i % 3}`)));
    results.forEach((r, i) => expect(r).toMatchObject({ stdout: `${i}\n`, code: i % 3 }));
  });

  test('its private output directory goes when it closes; one left by a dead shell goes at the next start', async () => {
    const own = (await shell.run('echo "$__lrd"; ls -ld "$__lrd" | cut -c1-10')).stdout.split('\n');
    expect(own[0]).toMatch(/^\/tmp\/labrig-sh\.\d+\.\w+$/);
    expect(own[1]).toBe('drwx------');
    // Left behind: one of a shell that is gone, one whose shell runs (pid 1), a planted symlink.
    const stale = `/tmp/labrig-sh.4194303.stale${process.pid}`;
    const live = `/tmp/labrig-sh.1.live${process.pid}`;
    const link = `/tmp/labrig-sh.4194302.link${process.pid}`;
    const target = `/tmp/labrig-link-target-${process.pid}`;
    await ssh.exec(`mkdir -p ${stale} ${live} ${target} && touch ${stale}/x.o ${target}/keep && ln -sfn ${target} ${link}`);
    const second = await openSshShell(ssh, logDir);
    const after = await ssh.exec(`for p in ${stale} ${live} ${link} ${target}/keep; do [ -e $p ] && echo "$p"; done; true`);
    expect(after.stdout).toBe(`${live}\n${link}\n${target}/keep\n`);
    expect((await shell.run('[ -d "$__lrd" ] && echo kept')).stdout).toBe('kept\n'); // a live shell's is never touched
    const secondDir = (await second.run('echo "$__lrd"')).stdout.trim();
    await second.close();
    await expect.poll(async () => (await ssh.exec(`[ -e ${secondDir} ] && echo there || echo gone`)).stdout).toBe('gone\n');
    await ssh.exec(`rm -rf ${live} ${link} ${target}`);
  });
});

test.describe('shell over a serial console (a real interactive sh on a pty)', () => {
  test('100 commands keep exit codes and exact output while something else writes to the tty', async () => {
    const { shell, stop } = await consoleShell('/bin/sh -i');
    try {
      // A writer that shares the tty, as the kernel does with printk on a serial console.
      const writer = await shell.run('(while :; do echo "[    1.000000] noise from elsewhere"; sleep 0.02; done) >/dev/tty 2>&1 & echo $!');
      for (let i = 0; i < 100; i++) {
        const r = await shell.run(`echo value-${i}; (exit ${i % 7})`);
        expect(r.code, `command ${i}`).toBe(i % 7);
        expect(r.stdout, `command ${i}`).toBe(`value-${i}\n`);
      }
      await shell.run(`kill ${Number(writer.stdout)}`, { check: true });
    } finally {
      await stop();
    }
  });

  test("login types nothing while the console still prints: a ^C would kill the guest's init before its shell starts", async () => {
    // As a busybox init: its last line, then, a moment later, the shell on the console. A ^C in
    // between reaches the starting program (it holds the tty), not a shell, and kills it. (The
    // first second: the Console opens the pty before anything is printed.)
    const pty = await startPtyProgram('sleep 1; echo init is starting the console shell; sleep 0.4; exec /bin/sh -i');
    const dir = await mkdtemp(join(tmpdir(), 'labrig-shell-'));
    const console = await Console.open(
      { kind: 'serial', path: pty.path, baud: 115200 },
      { name: 'pty', logPath: join(dir, 'console.log') },
    );
    try {
      await console.expect(/starting the console shell/, { timeoutMs: 10_000, from: 0 });
      const shell = await Shell.overConsole(console, login, { host: 'pty' });
      expect((await shell.run('echo logged-in')).stdout).toBe('logged-in\n');
    } finally {
      await console.close();
      await pty.stop();
    }
  });

  test('a command that hangs is interrupted with ^C and the shell resynchronises', async () => {
    const { shell, stop } = await consoleShell('/bin/sh -i');
    try {
      const err = await shell.run('sleep 60', { timeoutMs: 1000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LabError);
      expect((err as LabError).kind).toBe('lab-timeout');
      expect((await shell.run('echo after')).stdout).toBe('after\n');
    } finally {
      await stop();
    }
  });

  test("the command's own output never trips the panic detector; a kernel line on the console does", async () => {
    const { shell, stop } = await consoleShell('/bin/sh -i');
    try {
      const own = await shell.run(
        "echo 'Oops, file not found'; echo 'Kernel panic - not syncing: from a log file'; echo 'BUG: in a grep' >&2",
      );
      expect(own).toMatchObject({ code: 0, stdout: 'Oops, file not found\nKernel panic - not syncing: from a log file\nBUG: in a grep\n' });
      // Written to the tty itself, not through the command's output: what printk does.
      const err = await shell
        .run("(sleep 0.3; echo 'Kernel panic - not syncing: VFS: Unable to mount root fs' >/dev/tty) & sleep 5", { timeoutMs: 20_000 })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProductError);
      expect((err as ProductError).kind).toBe('panic');
      expect((err as Error).message).toContain('Unable to mount root fs');
    } finally {
      await stop();
    }
  });

  test('commands that read stdin do not eat the end marker', async () => {
    const { shell, stop } = await consoleShell('/bin/sh -i');
    try {
      expect(await shell.run('cat; echo done', { timeoutMs: 10_000 })).toMatchObject({ code: 0, stdout: 'done\n' });
      expect(await shell.run('read x; echo "rc=$? x=$x"', { timeoutMs: 10_000 })).toMatchObject({ code: 0, stdout: 'rc=1 x=\n' });
      expect(await shell.run('head -c 3; echo end', { timeoutMs: 10_000 })).toMatchObject({ code: 0, stdout: 'end\n' });
      expect((await shell.run('echo clean')).stdout).toBe('clean\n');
    } finally {
      await stop();
    }
  });

  test('busybox sh on the console: hostile commands answer as they do in a subshell, and the next runs clean', async () => {
    const { shell, stop } = await consoleShell('busybox sh -i');
    try {
      const wrong: string[] = [];
      for (const c of hostileCases(50).filter((h) => !h.binary && !h.name.includes('MiB'))) {
        const want = await ttyOracle(['busybox', 'sh'], c);
        const r = await shell.run(c.command, { timeoutMs: 30_000 });
        if (r.code !== want.code || withoutShellMessages(r.stdout) !== withoutShellMessages(want.stdout))
          wrong.push(
            `${c.name}: exit ${r.code} (want ${want.code}), ${JSON.stringify(r.stdout.slice(0, 120))} (want ${JSON.stringify(want.stdout.slice(0, 120))})`,
          );
        const next = await shell.run('echo next');
        if (next.stdout !== 'next\n' || next.code !== 0) wrong.push(`after ${c.name}: ${JSON.stringify(next)}`);
      }
      expect(wrong).toEqual([]);
    } finally {
      await stop();
    }
  });
});
