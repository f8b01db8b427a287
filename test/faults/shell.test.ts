/**
 * Faults of the shell protocol, each provoked for real: hostile commands over a real sshd
 * and over an interactive sh on a real pty, an SSH connection cut mid-command by killing
 * the sshd process serving it, a second writer on the console's tty, and the failures that
 * are the lab's (a silent console, a hung exec, a runner tool). Each row prints its counts.
 */

import { closeSync, constants, openSync, readlinkSync, writeSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { Console } from '../../drivers/console.js';
import { consoleOptionsSchema, DEFAULT_PROMPT } from '../../drivers/console-options.js';
import { LabError, ProductError } from '../../drivers/errors.js';
import { runLocal } from '../../drivers/local.js';
import { createPower } from '../../drivers/power.js';
import { powerOptionsSchema } from '../../drivers/power-options.js';
import { Shell } from '../../drivers/shell.js';
import { Host } from '../../targets/host.js';
import { hostSchema } from '../../targets/schema.js';
import { hostileCases, oracle, ttyOracle, withoutShellMessages } from '../helpers/hostile.js';
import { startPtyProgram } from '../helpers/pty.js';
import { childrenOf, testSshd } from '../helpers/sshd.js';

const login = { user: 'root', prompt: new RegExp(DEFAULT_PROMPT, 'm'), timeoutMs: 20_000 };
const row = (line: string): void => void process.stdout.write(`[faults/shell] ${line}\n`);
const caught = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

interface Tally {
  codes: number;
  outputs: number;
  desyncs: number;
  wrong: string[];
}

/** Runs each hostile case then a probe; a probe that is not exactly itself is a desync. */
async function hostileRun(
  run: (command: string) => Promise<{ code: number | null; stdout: string; stdoutBytes?: Buffer }>,
  want: (
    c: ReturnType<typeof hostileCases>[number],
  ) => Promise<{ code: number; same: (r: { stdout: string; stdoutBytes?: Buffer }) => boolean }>,
): Promise<Tally & { ms: number }> {
  const tally: Tally = { codes: 0, outputs: 0, desyncs: 0, wrong: [] };
  let ms = 0;
  const cases = hostileCases(100);
  for (const [i, c] of cases.entries()) {
    const w = await want(c);
    const t0 = performance.now();
    const r = await run(c.command);
    const probe = await run(`echo probe-${i}`);
    ms += performance.now() - t0;
    if (r.code === w.code) tally.codes++;
    else tally.wrong.push(`${c.name}: exit ${r.code}, want ${w.code}`);
    if (w.same(r)) tally.outputs++;
    else tally.wrong.push(`${c.name}: output ${JSON.stringify(r.stdout.slice(0, 120))}`);
    if (probe.code !== 0 || probe.stdout !== `probe-${i}\n`) {
      tally.desyncs++;
      tally.wrong.push(`after ${c.name}: probe answered ${JSON.stringify(probe)}`);
    }
  }
  return { ...tally, ms: ms / (cases.length * 2) };
}

test.describe('over the SSH shell (real sshd)', () => {
  test.describe.configure({ mode: 'serial' });
  let env: Awaited<ReturnType<typeof testSshd>>;
  let host: Host;

  test.beforeAll(async () => {
    env = await testSshd();
    host = new Host(hostSchema.parse({ name: 'faulty', role: 'local', ssh: env.config, expect: { arch: 'x86_64' } }), {
      logDir: await mkdtemp(join(tmpdir(), 'labrig-faults-')),
    });
  });
  test.afterAll(async () => {
    await host?.close();
    await env?.cleanup();
  });

  test('100 hostile commands: every exit code right, every output exact, no desync', async () => {
    const t = await hostileRun(
      (command) => host.run(command, { raw: true, timeoutMs: 30_000 }),
      async (c) => {
        const o = await oracle(['sh'], c);
        return { code: o.code, same: (r) => r.stdoutBytes!.equals(o.stdout) };
      },
    );
    row(
      `hostile over SSH: ${t.codes}/100 exit codes right, ${t.outputs}/100 outputs exact, ${t.desyncs} desyncs, ms/command ${t.ms.toFixed(2)}`,
    );
    expect(t.wrong).toEqual([]);
  });

  test('the sshd process serving the session killed mid-command: a lab error, then a new connection and a clean command', async () => {
    await host.run('true');
    const [serving] = await childrenOf(env.sshd.pid);
    expect(serving, 'the sshd child serving our connection').toBeDefined();
    const running = caught(host.run('sleep 30; echo never', { timeoutMs: 60_000 }));
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    process.kill(serving!, 'SIGKILL');
    const err = await running;
    const detectMs = performance.now() - t0;
    expect(err).toBeInstanceOf(LabError);
    expect((err as LabError).kind).toBe('unreachable');
    const t1 = performance.now();
    const next = await host.run('echo back; exit 3');
    const reconnectMs = performance.now() - t1;
    expect(next).toMatchObject({ stdout: 'back\n', code: 3 });
    row(
      `ssh dropped mid-command: ${(err as Error).message.split('\n')[0]} after ${detectMs.toFixed(0)} ms; reconnected and ran the next command in ${reconnectMs.toFixed(0)} ms`,
    );
  });

  test('an SSH exec that hangs is a lab timeout, and the host stays usable', async () => {
    const err = await caught(host.exec('sleep 30', { timeoutMs: 1000 }));
    expect(err).toBeInstanceOf(LabError);
    expect((err as LabError).kind).toBe('lab-timeout');
    expect((await host.run('echo fine')).stdout).toBe('fine\n');
    row(`ssh exec hung: ${(err as Error).message.split('\n')[0]}`);
  });
});

test.describe('over the console shell (interactive sh on a real pty)', () => {
  async function consoleShell(): Promise<{ shell: Shell; console: Console; stop(): Promise<void> }> {
    const pty = await startPtyProgram('/bin/sh -i');
    const console = await Console.open(
      { kind: 'serial', path: pty.path, baud: 115200 },
      { name: 'pty', logPath: join(await mkdtemp(join(tmpdir(), 'labrig-faults-')), 'console.log') },
    );
    const stop = async (): Promise<void> => {
      await console.close();
      await pty.stop();
    };
    try {
      // A prompt printed before the Console opened the pty is lost, and a ^C (login's wake-up)
      // before sh handles SIGINT kills it: a newline waits in the tty until sh reads it.
      await console.write('\n');
      await console.expect(login.prompt, { timeoutMs: 10_000, what: 'sh -i to start' });
      return { shell: await Shell.overConsole(console, login, { host: 'pty' }), console, stop };
    } catch (e) {
      await stop();
      throw e;
    }
  }

  test('100 hostile commands: every exit code right, every text output exact, no desync', async () => {
    const { shell, stop } = await consoleShell();
    try {
      const t = await hostileRun(
        (command) => shell.run(command, { timeoutMs: 60_000 }),
        async (c) => {
          const o = await ttyOracle(['sh'], c);
          // A tty cannot carry NUL bytes: binary output is checked for its exit code and framing only.
          return { code: o.code, same: (r) => c.binary === true || withoutShellMessages(r.stdout) === withoutShellMessages(o.stdout) };
        },
      );
      row(
        `hostile over the console: ${t.codes}/100 exit codes right, ${t.outputs}/100 outputs exact (binary: framing only), ${t.desyncs} desyncs, ms/command ${t.ms.toFixed(1)}`,
      );
      expect(t.wrong).toEqual([]);
    } finally {
      await stop();
    }
  });

  test('a second writer on the same tty every 100 ms: the command output stays exact', async () => {
    const { shell, stop } = await consoleShell();
    // The interactive shell's own tty, opened by this process: another writer, as a getty or printk is.
    const shellPid = Number((await shell.run('echo $$')).stdout);
    const tty = readlinkSync(`/proc/${shellPid}/fd/0`);
    const fd = openSync(tty, constants.O_WRONLY | constants.O_NOCTTY);
    let foreign = 0;
    const writer = setInterval(() => writeSync(fd, `[   ${(++foreign / 10).toFixed(6)}] getty[1]: foreign line ${foreign}\r\n`), 100);
    try {
      let exact = 0;
      const wrong: string[] = [];
      for (let i = 0; i < 100; i++) {
        const r = await shell.run(`for j in 1 2 3; do echo "line $j of ${i}"; sleep 0.01; done; exit ${i % 5}`);
        const want = `line 1 of ${i}\nline 2 of ${i}\nline 3 of ${i}\n`;
        if (r.stdout === want && r.code === i % 5) exact++;
        else wrong.push(`${i}: ${JSON.stringify(r)}`);
      }
      row(`console with a second writer: ${exact}/100 outputs exact, ${foreign} foreign lines written meanwhile`);
      expect(foreign).toBeGreaterThan(20);
      expect(exact, wrong.join('\n')).toBeGreaterThanOrEqual(99);
    } finally {
      clearInterval(writer);
      closeSync(fd);
      await stop();
    }
  });
});

test.describe("failures that are the lab's, not the product's", () => {
  test('a console wait with not one byte received: [lab:console-silent]', async () => {
    const sockets: import('node:net').Socket[] = [];
    const server = createServer((s) => sockets.push(s)); // accepts, never speaks: a dead ser2net
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const console = await Console.open(consoleOptionsSchema.parse({ kind: 'tcp', address: '127.0.0.1', port }), {
      name: 'mute',
      logPath: join(await mkdtemp(join(tmpdir(), 'labrig-faults-')), 'mute.log'),
    });
    try {
      const err = await caught(console.expect(/login: /, { timeoutMs: 500, what: 'the login prompt' }));
      expect((err as LabError).kind).toBe('console-silent');
      row(`silent console: ${(err as Error).message.split('\n')[0]}`);
    } finally {
      await console.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  test('runner tools: a failing power command, a failing QMP start, a hung tool: lab failures', async () => {
    const power = createPower(
      powerOptionsSchema.parse({
        kind: 'command',
        on: ['sh', '-c', 'echo "PDU refused" >&2; exit 3'],
        off: ['true'],
        status: ['echo', 'off'],
        minOffMs: 0,
      }),
    );
    const onErr = await caught(power.on());
    expect((onErr as LabError).kind).toBe('runner-tool');
    expect((onErr as Error).message).toContain('PDU refused');
    const qmp = createPower(
      powerOptionsSchema.parse({ kind: 'qmp', socket: join(tmpdir(), `labrig-no-qemu-${process.pid}.sock`), start: ['false'] }),
    );
    const startErr = await caught(qmp.on());
    expect((startErr as LabError).kind).toBe('runner-tool');
    const hung = await caught(runLocal(['sleep', '30'], { timeoutMs: 300 }));
    expect((hung as LabError).kind).toBe('lab-timeout');
    const missing = await caught(runLocal(['/nonexistent/ipmitool', 'chassis', 'power', 'status']));
    expect((missing as LabError).kind).toBe('runner-tool');
    expect((missing as Error).message).toContain('ENOENT');
    for (const e of [onErr, startErr, hung, missing]) row(`runner tool: ${(e as Error).message.split('\n')[0]}`);
    expect(onErr).not.toBeInstanceOf(ProductError);
  });
});
