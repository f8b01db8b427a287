/**
 * One domU's life on a Xen host, step by step, with the evidence of each step: create
 * (paused, so its console is attached before the guest prints a byte) → listed → its own
 * marker on its console and a command run inside it → shutdown, falling back to destroy →
 * gone without a trace. The caller (the spec) turns the steps into Allure steps and checks
 * the outcome; this file knows no test runner.
 */
import { randomBytes } from 'node:crypto';
import { Console } from '../../drivers/console.js';
import { DEFAULT_PROMPT } from '../../drivers/console-options.js';
import { ProductError } from '../../drivers/errors.js';
import { Shell } from '../../drivers/shell.js';
import { shellQuote } from '../../drivers/ssh.js';
import { type Xl, type XlDomain, type XlDomainSpec, xlFailureReason } from '../../drivers/xl.js';
import type { Host } from '../../targets/host.js';
import { type DomainIdentity, findLeftovers, type Leftovers, leftoversScript } from './leftovers.js';

/** How evidence reaches the report (the spec passes test.info().attach). */
export type Attach = (name: string, body: string) => Promise<void>;

export const newMarker = () => randomBytes(6).toString('hex');

/** Where the suite keeps its cfg files on the host. */
export const CFG_DIR = '/tmp/labrig-xen';

/** Opens `xl console [-t serial] <name>` over the host's SSH, as the console driver's command kind. */
export async function openDomainConsole(host: Host, name: string, type: 'pv' | 'serial', logPath: string): Promise<Console> {
  return Console.open(
    { kind: 'command', argv: ['xl', 'console', ...(type === 'serial' ? ['-t', 'serial'] : []), name], on: 'ssh' },
    { name: `${host.name}/${name}`, logPath },
    // as Host.console() does: a pty, so xenconsole gets a terminal
    { openCommand: (argv) => host.ssh.openCommand(argv.map(shellQuote).join(' '), { pty: true }) },
  );
}

export interface CreatedDomain {
  domid: number;
  uuid: string | undefined;
  createMs: number;
  console: Console;
  /** performance.now() when the guest was unpaused. */
  startedAt: number;
}

/**
 * `xl -vvv create -p`, the guest's console attached, then `xl unpause`. A failed create
 * attaches xl's -vvv output and the domain's logs before throwing.
 */
export async function createDomain(
  host: Host,
  xl: Xl,
  spec: XlDomainSpec,
  o: { cfgPath: string; consoleLog: string; consoleType: 'pv' | 'serial'; timeoutMs: number },
  attach: Attach,
): Promise<CreatedDomain> {
  const created = await xl.create(o.cfgPath, { paused: true, timeoutMs: o.timeoutMs });
  if (!created.ok) {
    await attach(`xl -vvv create ${spec.name}.txt`, created.output);
    await attachDomainLogs(host, spec.name, attach);
    throw new ProductError('did-not-boot', `xl create ${o.cfgPath} failed (exit ${created.code}): ${xlFailureReason(created.output)}`, {
      host: host.name,
    });
  }
  const long = (await xl.listLong()).find((d) => d.name === spec.name);
  const dom = (await xl.list()).find((d) => d.name === spec.name);
  if (!dom) throw new ProductError('did-not-boot', `xl create succeeded but ${spec.name} is not in xl list`, { host: host.name });
  const console = await openDomainConsole(host, spec.name, o.consoleType, o.consoleLog);
  await xl.unpause(spec.name);
  return { domid: dom.id, uuid: long?.uuid, createMs: created.ms, console, startedAt: performance.now() };
}

/** xl's and the device model's logs of a domain (libxl names them after it), attached if present. */
export async function attachDomainLogs(host: Host, name: string, attach: Attach): Promise<void> {
  for (const file of [`/var/log/xen/xl-${name}.log`, `/var/log/xen/qemu-dm-${name}.log`, `/var/log/xen/console/guest-${name}.log`]) {
    const r = await host.run(`cat ${shellQuote(file)}`, { timeoutMs: 20_000 }).catch(() => undefined);
    if (r?.code === 0) await attach(file.split('/').pop()!, r.stdout);
  }
}

export function listed(list: readonly XlDomain[], name: string): XlDomain | undefined {
  return list.find((d) => d.name === name);
}

/**
 * A root shell on the guest's console (the guest offers one; no password). When none comes,
 * the guest's kernel is asked for its task list (sysrq t, through xl) before the error goes
 * on, so the console log attached to the failure shows what the guest was doing.
 */
export async function guestShell(host: Host, name: string, console: Console, timeoutMs: number): Promise<Shell> {
  try {
    return await Shell.overConsole(
      console,
      { user: 'root', prompt: new RegExp(DEFAULT_PROMPT, 'm'), timeoutMs },
      { host: `${host.name}/${name}` },
    );
  } catch (e) {
    await host.run(`xl sysrq ${shellQuote(name)} t`, { timeoutMs: 30_000 }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 3_000));
    throw e;
  }
}

export async function leftoversOf(host: Host, d: DomainIdentity): Promise<{ leftovers: Leftovers; evidence: string }> {
  const r = await host.run(leftoversScript(await host.os()), { timeoutMs: 60_000, check: true });
  return { leftovers: findLeftovers(r.stdout, d), evidence: r.stdout };
}
