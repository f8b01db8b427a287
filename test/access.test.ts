/**
 * The access paths of real labs on real daemons, without QEMU: OpenIPMI's ipmi_sim as a BMC
 * (IPMI lanplus power whose startcmd runs a real process, Serial-over-LAN onto a shell on a
 * pty behind a TCP port, as QEMU's serial chardev is) and ser2net serving a pty over telnet.
 * Everything listens on 127.0.0.4, and every daemon is stopped by its PID.
 */

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { Console } from '../drivers/console.js';
import { consoleOptionsSchema, DEFAULT_PROMPT } from '../drivers/console-options.js';
import { parsePayloadHolder, parseSessionInfo } from '../drivers/console-sol.js';
import { LabError } from '../drivers/errors.js';
import { createPower } from '../drivers/power.js';
import { powerOptionsSchema } from '../drivers/power-options.js';
import { isOurProcess } from '../drivers/proc.js';
import { Shell } from '../drivers/shell.js';
import { BMC_CIPHER_SUITE, type BmcRecord, bmcQemuArgs, lanConf, startBmc, stopBmc } from '../targets/emulated/bmc.js';
import { qemuArgv, vmPaths } from '../targets/emulated/qemu-vm.js';
import { type Ser2netRecord, ser2netYaml, startSer2net, stopSer2net } from '../targets/emulated/ser2net.js';
import { freePort } from './helpers/free-port.js';
import { type PtyProgram, startPtyProgram } from './helpers/pty.js';

test.describe.configure({ mode: 'serial' });

const ADDRESS = '127.0.0.4';
const ENV = 'LABRIG_TEST_BMC_PASSWORD';
const login = { user: 'root', prompt: new RegExp(DEFAULT_PROMPT, 'm'), timeoutMs: 20_000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let bmc: BmcRecord;
let serialShell: { pid: number; stop(): Promise<void> };
const password = `pw${Date.now().toString(36)}`;

/** A shell on its own pty for every connection to ADDRESS:port: the "serial line" SOL carries. */
function shellOnTcp(port: number): { pid: number; stop(): Promise<void> } {
  const child = spawn(
    'setpriv',
    ['--pdeathsig', 'KILL', 'socat', `tcp-listen:${port},bind=${ADDRESS},reuseaddr,fork`, 'system:sh -i,pty,setsid,ctty,stderr'],
    { stdio: 'ignore' },
  );
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await Promise.race([gone, sleep(3000)]);
    },
  };
}

const solConfig = (takeOver: boolean) =>
  consoleOptionsSchema.parse({
    kind: 'ipmi-sol',
    address: ADDRESS,
    port: bmc.lanPort,
    user: bmc.user,
    passwordEnv: ENV,
    cipherSuite: BMC_CIPHER_SUITE,
    takeOver,
  });
const openSol = (takeOver: boolean, name: string) => Console.open(solConfig(takeOver), { name, logPath: join(dir, `${name}.log`) });

test.beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'labrig-access-'));
  process.env[ENV] = password;
  const solPort = await freePort();
  serialShell = shellOnTcp(solPort);
  // chassis power on runs a real process, as it runs QEMU in the lab; its command line carries the marker.
  bmc = await startBmc({
    host: 'bmc-test',
    dir: join(dir, 'bmc'),
    address: ADDRESS,
    lanPort: await freePort(),
    vmPort: await freePort(),
    solDevice: `tcp:${ADDRESS}:${solPort}`,
    startArgv: ['/bin/sh', '-c', 'echo $$ > "$0"; exec tail -f /dev/null "$0"', join(dir, 'power-marker')],
    user: 'labrig',
    password,
  });
});

test.afterAll(async () => {
  if (bmc) await stopBmc(bmc);
  await serialShell?.stop();
  delete process.env[ENV];
  await rm(dir, { recursive: true, force: true });
});

test('the BMC config keeps the password out of argv and refuses one that would break its quoting', async () => {
  const ps = await readFile(`/proc/${bmc.pid}/cmdline`, 'utf8');
  expect(ps).not.toContain(password);
  expect(() =>
    lanConf({ ...{ host: 'h', dir: '/d', address: ADDRESS, lanPort: 1, vmPort: 2, user: 'u' }, password: 'a"b' }, undefined),
  ).toThrow(/\[lab:config\].*password must not hold quotes/);
});

test('IPMI power through ipmitool lanplus: on starts the power-on command, off stops it, status follows', async () => {
  const power = createPower(
    powerOptionsSchema.parse({
      kind: 'ipmi',
      address: ADDRESS,
      port: bmc.lanPort,
      user: 'labrig',
      passwordEnv: ENV,
      cipherSuite: BMC_CIPHER_SUITE,
      minOffMs: 0,
    }),
    undefined,
    { host: 'bmc-test', settleMs: 30_000 },
  );
  expect(await power.status()).toBe('off');
  await power.on();
  expect(await power.status()).toBe('on');
  const started = await findMarker(join(dir, 'power-marker'));
  expect(isOurProcess(started, join(dir, 'power-marker'))).toBe(true);
  await power.off();
  expect(await power.status()).toBe('off');
  await expect.poll(() => isOurProcess(started, join(dir, 'power-marker')), { timeout: 15_000 }).toBe(false);
  const wrong = createPower(
    powerOptionsSchema.parse({
      kind: 'ipmi',
      address: ADDRESS,
      port: bmc.lanPort,
      user: 'labrig',
      passwordEnv: 'LABRIG_TEST_UNSET_BMC_PW',
    }),
    undefined,
    { host: 'bmc-test' },
  );
  await expect(wrong.status()).rejects.toThrow(/\[lab:config\].*LABRIG_TEST_UNSET_BMC_PW is not set/);
});

test('SOL console: 100 commands through the console shell, exit codes right', async () => {
  test.setTimeout(180_000);
  const console = await openSol(false, 'sol-shell');
  try {
    // What the serial line printed before SOL connected is gone: a newline asks for a fresh prompt.
    await console.write('\n');
    await console.expect(login.prompt, { timeoutMs: 20_000, what: 'the shell behind SOL' });
    const shell = await Shell.overConsole(console, login, { host: 'sol' });
    for (let i = 0; i < 100; i++) {
      const r = await shell.run(`echo value-${i}; (exit ${i % 5})`, { timeoutMs: 30_000 });
      expect(r.code, `command ${i}`).toBe(i % 5);
      expect(r.stdout, `command ${i}`).toContain(`value-${i}`);
    }
  } finally {
    await console.close();
  }
});

test('a second SOL client is console-busy naming the holder; takeOver ends the first with sol deactivate', async () => {
  const first = await openSol(false, 'sol-first');
  try {
    const busy = await openSol(false, 'sol-second').catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(LabError);
    expect((busy as LabError).kind).toBe('console-busy');
    expect(String(busy)).toMatch(/SOL payload already active, held by session 0x[0-9a-f]+, user id 2/);
    const taker = await openSol(true, 'sol-taker');
    await taker.write('echo taken-$((6*7))\n');
    await taker.expect(/taken-42/, { timeoutMs: 20_000 });
    await taker.close();
  } finally {
    await first.close();
  }
  // Closed through the escape sequence, the payload is free at once for the next client.
  const again = await openSol(false, 'sol-again');
  await again.close();
});

test('QEMU behind a BMC: running at once (no -S), serial on the TCP port SOL connects to, KCS wired to ipmi_sim; ser2net serves the pty', () => {
  const argv = qemuArgv(
    {
      name: 'h',
      binary: 'qemu-system-x86_64',
      machine: 'pc',
      cpu: 'max',
      memoryMiB: 256,
      smp: 1,
      paused: false,
      serialTcp: { address: '127.0.0.2', port: 2526 },
      sshForwardPort: 2223,
      sshForwardAddress: '127.0.0.2',
      extraArgs: bmcQemuArgs('127.0.0.2', 2423),
    },
    vmPaths('/run/x', 'h'),
  );
  expect(argv).not.toContain('-S');
  expect(argv.join(' ')).toContain('socket,id=con0,host=127.0.0.2,port=2526,server=on,wait=off,logfile=/run/x/h-console.log');
  expect(argv.join(' ')).toContain('hostfwd=tcp:127.0.0.2:2223-:22');
  expect(argv).toEqual(
    expect.arrayContaining([
      'socket,id=ipmi0,host=127.0.0.2,port=2423,reconnect=10',
      'ipmi-bmc-extern,id=bmc0,chardev=ipmi0',
      'isa-ipmi-kcs,bmc=bmc0',
    ]),
  );
  expect(ser2netYaml({ host: 'h', dir: '/d', device: '/run/x/h.tty', address: '127.0.0.3', port: 2326 })).toContain(
    'accepter: telnet(rfc2217=false),tcp,127.0.0.3,2326',
  );
  expect(() => ser2netYaml({ host: 'h', dir: '/d', device: '/run/x y', address: '127.0.0.3', port: 1 })).toThrow(
    /\[lab:config\].*must not hold spaces/,
  );
});

test('SOL holder parsing: Get Payload Instance Info and session info', () => {
  expect(parsePayloadHolder(' 82 07 00 00 01 00 00 00 00 00 00 00\n')).toBe('0x00000782');
  expect(parsePayloadHolder(' 00 00 00 00 00 00 00 00\n')).toBeUndefined();
  expect(parseSessionInfo('session handle : 1\nuser id : 2\nconsole ip : 10.1.2.3\n')).toEqual({ userId: '2', consoleIp: '10.1.2.3' });
});

test.describe('ser2net over telnet', () => {
  let pty: PtyProgram;
  let s2n: Ser2netRecord;
  test.beforeAll(async () => {
    pty = await startPtyProgram('sh -i');
    s2n = await startSer2net({
      host: 'ser2net-test',
      dir: join(dir, 'ser2net'),
      device: pty.path,
      address: ADDRESS,
      port: await freePort(),
    });
  });
  test.afterAll(async () => {
    if (s2n) await stopSer2net(s2n);
    await pty?.stop();
  });

  test('the console works through ser2net, and a second client is told "Port already in use": console-busy', async () => {
    const config = consoleOptionsSchema.parse({ kind: 'tcp', address: ADDRESS, port: s2n.port, telnet: true });
    // The readiness probe of startSer2net was a client too: ser2net may still be closing it.
    let first: Console | undefined;
    for (let i = 0; !first && i < 20; i++)
      first = await Console.open(config, { name: 's2n-1', logPath: join(dir, 's2n-1.log') }).catch(
        async () => (await sleep(250), undefined),
      );
    expect(first).toBeDefined();
    try {
      await first!.write('echo via-ser2net-$((2+3))\n');
      await first!.expect(/via-ser2net-5/, { timeoutMs: 20_000 });
      const busy = await Console.open(config, { name: 's2n-2', logPath: join(dir, 's2n-2.log') }).catch((e: unknown) => e);
      expect(busy).toBeInstanceOf(LabError);
      expect((busy as LabError).kind).toBe('console-busy');
      expect(String(busy)).toContain('Port already in use');
    } finally {
      await first!.close();
    }
  });
});

/** The power-on command writes its PID to the marker file and keeps the path on its command line. */
async function findMarker(marker: string): Promise<number> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const pid = Number((await readFile(marker, 'utf8').catch(() => '')).trim());
    if (pid && isOurProcess(pid, marker)) return pid;
    if (Date.now() > deadline) throw new Error(`no process with ${marker} on its command line`);
    await sleep(100);
  }
}
