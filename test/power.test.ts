/**
 * Power controllers. The command kind runs real shell scripts that keep the power state in
 * a file; the QMP kind drives a real QEMU (quit, start again, reset). ipmitool and Redfish
 * are checked only as far as the argv and the HTTP request they build: there is no BMC here.
 */

import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { createPower, ipmiArgv, parseIpmiStatus, redfishRequest } from '../drivers/power.js';
import { powerOptionsSchema } from '../drivers/power-options.js';
import { isOurProcess, stopProcess } from '../drivers/proc.js';
import { Qmp } from '../drivers/qmp.js';
import { takeQemuSlot } from './helpers/qemu-slot.js';

let dir: string;
test.beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'labrig-power-'));
});
test.afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function script(name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\nset -e\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

/** A "switch" whose state lives in a file; every switching is logged with a timestamp in ms. */
async function commandSwitch(minOffMs: number) {
  const state = join(dir, 'state');
  const log = join(dir, 'log');
  await writeFile(state, 'off\n');
  const on = await script('on.sh', `echo on > ${state}; echo "on $(date +%s%3N)" >> ${log}`);
  const off = await script('off.sh', `echo off > ${state}; echo "off $(date +%s%3N)" >> ${log}`);
  const status = await script('status.sh', `cat ${state}`);
  const config = powerOptionsSchema.parse({ kind: 'command', on: [on], off: [off], status: [status], minOffMs });
  const events = async () =>
    (await readFile(log, 'utf8').catch(() => ''))
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => ({ what: l.split(' ')[0], at: Number(l.split(' ')[1]) }));
  return { power: createPower(config, undefined, { host: 'switch', settleMs: 5000 }), state, events };
}

test('command: on, off and status follow the real state file', async () => {
  const { power, state } = await commandSwitch(0);
  expect(await power.status()).toBe('off');
  await power.on();
  expect(await readFile(state, 'utf8')).toBe('on\n');
  expect(await power.status()).toBe('on');
  await power.off();
  expect(await power.status()).toBe('off');
});

test('command: cycle keeps the host off for minOffMs, and so does on() right after off()', async () => {
  const { power, events } = await commandSwitch(1500);
  await power.on();
  await power.cycle();
  let ev = await events();
  expect(ev.map((e) => e.what)).toEqual(['on', 'off', 'on']);
  expect(ev[2]!.at - ev[1]!.at).toBeGreaterThanOrEqual(1500);
  await power.off();
  await power.on();
  ev = await events();
  expect(ev[4]!.at - ev[3]!.at).toBeGreaterThanOrEqual(1500);
});

test('command: a status it cannot read is "unknown"; a failing switch is an error', async () => {
  const bad = powerOptionsSchema.parse({
    kind: 'command',
    on: [await script('fail.sh', 'echo "relay stuck" >&2; exit 3')],
    off: ['true'],
    status: [await script('odd.sh', 'echo maybe')],
  });
  const power = createPower(bad);
  expect(await power.status()).toBe('unknown');
  await expect(power.on()).rejects.toThrow(/exit 3.*relay stuck/s);
});

test('ipmitool argv (no BMC here): the password goes by IPMI_PASSWORD and -E, never on argv', () => {
  const c = powerOptionsSchema.parse({ kind: 'ipmi', address: '10.0.0.5', user: 'admin', passwordEnv: 'KUNPENG_BMC_PASSWORD' });
  if (c.kind !== 'ipmi') throw new Error('schema');
  expect(ipmiArgv(c, 'status')).toEqual(['ipmitool', '-I', 'lanplus', '-H', '10.0.0.5', '-U', 'admin', '-E', 'chassis', 'power', 'status']);
  expect(ipmiArgv(c, 'on').join(' ')).not.toMatch(/-P|KUNPENG/);
  const sim = powerOptionsSchema.parse({
    kind: 'ipmi',
    address: '127.0.0.2',
    port: 2323,
    cipherSuite: 3,
    user: 'labrig',
    passwordEnv: 'BMC_PW',
  });
  if (sim.kind !== 'ipmi') throw new Error('schema');
  expect(ipmiArgv(sim, 'cycle')).toEqual([
    'ipmitool',
    '-I',
    'lanplus',
    '-H',
    '127.0.0.2',
    '-p',
    '2323',
    '-C',
    '3',
    '-U',
    'labrig',
    '-E',
    'chassis',
    'power',
    'cycle',
  ]);
  expect(parseIpmiStatus('Chassis Power is on\n')).toBe('on');
  expect(parseIpmiStatus('Chassis Power is off\n')).toBe('off');
  expect(parseIpmiStatus('Error: Unable to establish IPMI v2 / RMCP+ session\n')).toBe('unknown');
});

test('ipmitool: a missing password variable is a config error before anything runs', async () => {
  const c = powerOptionsSchema.parse({ kind: 'ipmi', address: '10.0.0.5', user: 'admin', passwordEnv: 'LABRIG_TEST_UNSET_VAR' });
  await expect(createPower(c, undefined, { env: {} }).status()).rejects.toThrow(/\[lab:config\].*LABRIG_TEST_UNSET_VAR is not set/);
});

test('Redfish requests (no BMC here): Reset actions, PowerState, basic auth from the env var', () => {
  const c = powerOptionsSchema.parse({
    kind: 'redfish',
    url: 'https://bmc.lab:8443/',
    user: 'root',
    passwordEnv: 'PMEM_BMC_PASSWORD',
    systemId: 'System.Embedded.1',
  });
  if (c.kind !== 'redfish') throw new Error('schema');
  const status = redfishRequest(c, 'status', 's3cret');
  expect(status).toMatchObject({ method: 'GET', url: 'https://bmc.lab:8443/redfish/v1/Systems/System.Embedded.1' });
  expect(Buffer.from(status.headers.authorization!.replace('Basic ', ''), 'base64').toString()).toBe('root:s3cret');
  for (const type of ['On', 'ForceOff', 'ForceRestart'] as const) {
    const r = redfishRequest(c, type, 's3cret');
    expect(r).toMatchObject({
      method: 'POST',
      url: 'https://bmc.lab:8443/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset',
    });
    expect(JSON.parse(r.body!)).toEqual({ ResetType: type });
  }
  const withPath = powerOptionsSchema.parse({ ...c, url: 'https://bmc.lab/redfish/v1' });
  if (withPath.kind !== 'redfish') throw new Error('schema');
  expect(redfishRequest(withPath, 'status', 'x').url).toBe('https://bmc.lab/redfish/v1/Systems/System.Embedded.1');
});

test('QMP: status, reset, quit, start again through the configured command', async () => {
  test.setTimeout(120_000);
  const release = await takeQemuSlot('power.test');
  const socket = join(dir, 'qmp.sock');
  const pidFile = join(dir, 'qemu.pid');
  // -daemonize: the start command returns once QEMU is up, as power.start must.
  const start = [
    'qemu-system-x86_64',
    '-S',
    '-display',
    'none',
    '-nodefaults',
    '-accel',
    'tcg',
    '-daemonize',
    '-pidfile',
    pidFile,
    '-qmp',
    `unix:${socket},server=on,wait=off`,
  ];
  const pid = async () => Number((await readFile(pidFile, 'utf8')).trim());
  try {
    const withoutStart = createPower(powerOptionsSchema.parse({ kind: 'qmp', socket }));
    expect(await withoutStart.status()).toBe('off');
    await expect(withoutStart.on()).rejects.toThrow(/\[lab:config\].*power.start is not configured/);

    const power = createPower(powerOptionsSchema.parse({ kind: 'qmp', socket, start }), undefined, { host: 'vm' });
    await power.on(); // runs the start command, then `cont`
    const first = await pid();
    expect(isOurProcess(first, socket)).toBe(true);
    expect(await power.status()).toBe('on');

    await power.cycle(); // system_reset: the same QEMU, reset
    expect(await pid()).toBe(first);
    expect(await power.status()).toBe('on');

    // QEMU serves one client per QMP socket: while another holds it, the state is unknown
    const qmp = await Qmp.connect(socket);
    expect(await power.status()).toBe('unknown');
    // stopped CPUs count as off, and on() resumes them
    await qmp.execute('stop');
    await qmp.close();
    expect(await power.status()).toBe('off');
    await power.on();
    expect(await power.status()).toBe('on');
    expect(await pid()).toBe(first);

    await power.off(); // quit: QEMU exits
    expect(await power.status()).toBe('off');
    const deadline = Date.now() + 5000;
    while (isOurProcess(first, socket) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(isOurProcess(first, socket)).toBe(false);

    await power.on(); // a new QEMU from power.start
    expect(await pid()).not.toBe(first);
    expect(await power.status()).toBe('on');
  } finally {
    await stopProcess(await pid().catch(() => undefined), socket);
    await release();
  }
});
