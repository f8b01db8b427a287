/**
 * One command interface (drivers/command.ts), served by the persistent SSH shell, SSH exec, a
 * console shell and the runner itself: the same call gives the same result and the same error
 * on each — on a real sshd, an interactive sh on a pty and the runner's own sh.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import type { CommandRunner } from '../drivers/command.js';
import { Console } from '../drivers/console.js';
import { DEFAULT_PROMPT } from '../drivers/console-options.js';
import { LabError, ProductError } from '../drivers/errors.js';
import { LocalRunner } from '../drivers/local.js';
import { Shell } from '../drivers/shell.js';
import { SshSession } from '../drivers/ssh.js';
import { openSshShell } from '../drivers/ssh-shell.js';
import { startPtyProgram } from './helpers/pty.js';
import { testSshd } from './helpers/sshd.js';

const caught = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

test.describe('one command interface', () => {
  test.describe.configure({ mode: 'serial' });
  const runners: Array<{ what: string; runner: CommandRunner; onHost: boolean }> = [];
  const stops: Array<() => unknown> = [];

  test.beforeAll(async () => {
    const env = await testSshd();
    stops.push(() => env.cleanup());
    const ssh = new SshSession('local', env.config);
    stops.push(() => ssh.close());
    const dir = await mkdtemp(join(tmpdir(), 'labrig-command-'));
    stops.push(() => rm(dir, { recursive: true, force: true }));
    const sshShell = await openSshShell(ssh, dir);
    stops.push(() => sshShell.close());
    const pty = await startPtyProgram('/bin/sh -i');
    stops.push(() => pty.stop());
    const console = await Console.open(
      { kind: 'serial', path: pty.path, baud: 115200 },
      { name: 'pty', logPath: join(dir, 'console.log') },
    );
    stops.push(() => console.close());
    const prompt = new RegExp(DEFAULT_PROMPT, 'm');
    await console.write('\n');
    await console.expect(prompt, { timeoutMs: 10_000, what: 'sh -i to start' });
    const consoleShell = await Shell.overConsole(console, { user: 'root', prompt, timeoutMs: 20_000 }, { host: 'pty' });
    runners.push(
      { what: 'SSH shell', runner: sshShell, onHost: true },
      { what: 'SSH exec', runner: ssh, onHost: true },
      { what: 'console shell', runner: consoleShell, onHost: true },
      { what: 'local runner', runner: new LocalRunner(), onHost: false },
    );
  });
  test.afterAll(async () => {
    for (const stop of stops.reverse()) await Promise.resolve(stop()).catch(() => undefined);
  });

  test("a non-zero exit is a result by default, and with check the same error on every host transport (the lab's on the runner)", async () => {
    for (const { what, runner, onHost } of runners) {
      const r = await runner.run('echo out; exit 3');
      expect(r, what).toMatchObject({ code: 3, stdout: 'out\n' });
      const err = await caught(runner.run('echo why >&2; exit 4', { check: true }));
      if (onHost) {
        expect(err, what).toBeInstanceOf(ProductError);
        expect((err as ProductError).kind, what).toBe('command-failed');
        expect((err as Error).message, what).toMatch(
          new RegExp(`^\\[product:command-failed\\] host ${runner.name}: exit 4: echo why >&2; exit 4\\nwhy`),
        );
      } else {
        expect(err, what).toBeInstanceOf(LabError);
        expect((err as LabError).kind, what).toBe('runner-tool');
      }
      expect((await runner.run('true', { check: true })).code, what).toBe(0);
    }
  });

  test("a deadline kills the command: the lab's timeout, or the product's when the command is under test; the runner goes on", async () => {
    test.setTimeout(120_000);
    for (const { what, runner } of runners) {
      const lab = await caught(runner.run('sleep 30', { timeoutMs: 1000 }));
      expect(lab, what).toBeInstanceOf(LabError);
      expect((lab as LabError).kind, what).toBe('lab-timeout');
      const product = await caught(runner.run('sleep 30', { timeoutMs: 1000, hangIsProduct: true }));
      expect(product, what).toBeInstanceOf(ProductError);
      expect((product as ProductError).kind, what).toBe('timeout');
      expect((await runner.run('echo after')).stdout, what).toBe('after\n');
    }
  });
});
