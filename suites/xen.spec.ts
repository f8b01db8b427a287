/**
 * Xen dom0 and domU lifecycle (DOMAIN.md §3, seeds 002 and 004): Xen and dom0 came up as
 * configured, and a domU can be created, reached and removed without a trace. Xen's serial
 * console is watched for panics the whole time.
 */
import type { Console } from '../drivers/console.js';
import { shellQuote } from '../drivers/ssh.js';
import { randomXenMac, Xl, type XlDomainSpec } from '../drivers/xl.js';
import { markerArgument, readyPattern } from '../images/contracts/xen-domu.js';
import { PYGRUB_BOOT_ARGUMENT } from '../images/xen-domu-disk.js';
import { factsScript, parseFacts } from '../targets/facts.js';
import { expect, runId, test } from '../targets/fixtures.js';
import { harnessName } from '../targets/harness-name.js';
import type { Host } from '../targets/host.js';
import {
  commandlineMismatches,
  expectedDom0MiB,
  hvmSupport,
  iommuState,
  parseDom0Mem,
  parseXenSerialBoot,
  type XenParams,
} from './xen/boot.js';
import { backendNic, bridgeMembersScript, parseBridgeMembers, parseProcessNames, processNamesScript } from './xen/dom0.js';
import { autostartPaths, kernelPvSpec, pygrubPvSpec, xendomainsStarted } from './xen/guests.js';
import { type DomainIdentity, isClean } from './xen/leftovers.js';
import { type Attach, attachDomainLogs, CFG_DIR, createDomain, guestShell, leftoversOf, listed, newMarker } from './xen/lifecycle.js';
import { watchForDeath } from './xen/watch.js';

const s = (ms: number) => Math.round(ms / 100) / 10;

/** Run inside our PV guest: what it is, what it was booted with, the MACs of its NICs (netfront may still be probing). */
const GUEST_FACTS = [
  'i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done',
  'echo "hypervisor=$(cat /sys/hypervisor/type 2>/dev/null)"',
  'echo "cmdline=$(cat /proc/cmdline)"',
  'echo "kernel=$(uname -r)"',
  'for n in /sys/class/net/eth*; do [ -e "$n/address" ] && echo "mac=$(cat $n/address)"; done; true',
].join('; ');

function keyValues(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.replace(/\r/g, '').split('\n')) {
    const m = /^([a-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}
const attach: Attach = (name, body) => test.info().attach(name, { body, contentType: 'text/plain' });

function xenParams(host: Host): XenParams {
  const p = host.config.suites.xen;
  test.skip(!p, `${host.name} has no suites.xen block in the lab config (the Xen settings to check)`);
  return p!;
}

test.describe('Xen dom0 and domU lifecycle @xen', () => {
  test('Xen boots dom0 as configured: serial console and xl info agree with the settings', async ({ host, findings }) => {
    const params = xenParams(host);
    const xl = new Xl(host);
    const console = await host.console();
    const from = console.received;

    // The console opened after the lab booted; a reboot shows Xen's boot on it from the first line.
    const back = await test.step('reboot into Xen with the serial console watched', () => host.reboot('os'));
    findings.record('reboot_to_ssh_s', s(back.ms), 's');

    const boot = await test.step('serial console: Xen banner, command line, dom0 login prompt', async () => {
      await console.expect(/\(XEN\) Xen version \S+/, { from, timeoutMs: 30_000, what: 'the Xen banner' });
      await console.expect(/\(XEN\) Command line:[^\n]*\n/, { from, timeoutMs: 30_000, what: "Xen's command line" });
      await console.expect(/login: /, { from, timeoutMs: 120_000, what: "dom0's login prompt on hvc0" });
      await attach('serial-boot.log', console.text(from));
      const parsed = parseXenSerialBoot(console.text(from));
      expect(parsed, 'a Xen boot on the serial console').toBeDefined();
      return parsed!;
    });
    findings.record('xen_banner', boot.banner);
    expect.soft(commandlineMismatches(boot.commandLine, params), `serial console: "(XEN) Command line: ${boot.commandLine}"`).toEqual([]);
    expect.soft(boot.serialInputToDom0, 'Xen hands the serial input to dom0').toBe(true);

    const info = await test.step('xl info: version and xen_commandline', async () => {
      const i = await xl.info();
      await attach(
        'xl-info.txt',
        Object.entries(i.fields)
          .map(([k, v]) => `${k.padEnd(22)} : ${v}`)
          .join('\n'),
      );
      return i;
    });
    findings.record('xen_version', info.xenVersion);
    findings.record('xen_commandline', info.xenCommandline);
    expect(info.xenVersion, 'xl info and the serial banner name the same Xen').toBe(boot.version);
    expect(info.xenCommandline, 'xl info xen_commandline is what the serial console showed').toBe(boot.commandLine);
    expect(commandlineMismatches(info.xenCommandline, params), `xl info xen_commandline: ${info.xenCommandline}`).toEqual([]);

    await test.step('IOMMU: xl info virt_caps and what Xen said at boot (xl dmesg, else the serial console)', async () => {
      const dmesg = await xl.dmesg();
      // the console ring may have wrapped since boot; the serial console kept the whole boot
      const fromDmesg = iommuState(info.virtCaps, dmesg);
      const state = fromDmesg.verdict ? fromDmesg : iommuState(info.virtCaps, console.text(from));
      await attach('iommu.txt', `${state.summary}\n${fromDmesg.verdict ? 'xl dmesg' : 'serial console'}:\n${state.lines.join('\n')}\n`);
      findings.record('iommu', state.summary);
      findings.record('iommu_enabled', state.enabled);
      expect(state.verdict, 'Xen says "I/O virtualisation enabled|disabled" at boot').toBeDefined();
      expect(state.verdict === 'enabled', `Xen's verdict and virt_caps directio agree (${state.summary})`).toBe(state.enabled);
    });

    await test.step('dom0 OS: uname and os-release', async () => {
      const facts = parseFacts((await host.run(factsScript(), { timeoutMs: 60_000 })).stdout);
      const dom0Os = [facts.os ?? 'unknown', facts.kernel, facts.distro || '(no /etc/os-release)'].join(' ');
      findings.record('dom0_os', dom0Os);
      expect(facts.os, `dom0 is the OS the lab drives it as (${dom0Os})`).toBe(await host.os());
      expect(facts.kernel, 'dom0 kernel release (uname -r)').not.toBe('');
    });

    await test.step('xl list: Domain-0 is ID 0 with the configured memory and vCPUs', async () => {
      const list = await xl.list();
      const long = await xl.listLong();
      await attach('xl-list.txt', JSON.stringify(list, null, 2));
      const dom0 = listed(list, 'Domain-0');
      expect(dom0, 'Domain-0 in xl list').toBeDefined();
      expect(dom0!.id).toBe(0);
      findings.record('dom0_mem_mib', dom0!.memMiB, 'MiB');
      findings.record('dom0_vcpus', dom0!.vcpus);
      // Xen gives dom0 no more vCPUs than there are physical CPUs.
      const vcpus = Math.min(params.dom0MaxVcpus, info.nrCpus);
      expect(dom0!.vcpus, `dom0_max_vcpus=${params.dom0MaxVcpus} on ${info.nrCpus} CPU(s)`).toBe(vcpus);
      if (boot.dom0MaxVcpus !== undefined) expect(boot.dom0MaxVcpus, '"Dom0 has maximum N VCPUs" on the serial console').toBe(vcpus);
      // dom0's current allocation may be a page short of its target (the Arch wiki shows 511 for 512M).
      const mib = expectedDom0MiB(params)!;
      expect(Math.abs(dom0!.memMiB - mib), `Domain-0 has ${dom0!.memMiB} MiB; dom0_mem=${params.dom0Mem}`).toBeLessThanOrEqual(
        Math.max(2, mib / 100),
      );
      const max = parseDom0Mem(params.dom0Mem).maxMiB;
      const dom0Long = long.find((d) => d.domid === 0);
      if (max !== undefined && dom0Long?.maxMemKiB !== undefined) expect(dom0Long.maxMemKiB / 1024, `max:${max}M in dom0_mem`).toBe(max);
    });

    await test.step('xenstored and xenconsoled are running', async () => {
      const comms = parseProcessNames((await host.run(processNamesScript(await host.os()), { timeoutMs: 30_000 })).stdout);
      expect(
        comms.some((c) => c === 'xenstored' || c === 'oxenstored'),
        'xenstored (C or OCaml) in the process list',
      ).toBe(true);
      expect(comms, 'xenconsoled in the process list').toContain('xenconsoled');
    });
  });

  test('PV domU: create, list, console marker and a command inside, shutdown, no trace', async ({ host, findings }) => {
    const params = xenParams(host);
    const pv = params.pvGuest;
    test.skip(!pv, `${host.name}: suites.xen.pvGuest is not configured (a PV kernel and ramdisk on the host)`);
    const marker = newMarker();
    const spec = kernelPvSpec(pv!, harnessName('pv', runId), marker);
    await domuLifecycle(host, spec, {
      kind: 'domu',
      consoleType: 'pv',
      ready: readyPattern(marker),
      timeouts: params.timeoutsMs,
      findings,
      inside: { marker, cmdline: [] },
    });
  });

  test('PV domU booted by pygrub from its disk image: the menu entry pygrub read, the marker, no trace', async ({ host, findings }) => {
    const params = xenParams(host);
    const pv = params.pvGuest;
    test.skip(!pv?.bootDisk, `${host.name}: suites.xen.pvGuest.bootDisk is not configured (a disk image with /boot/grub/grub.cfg)`);
    const marker = newMarker();
    const spec = pygrubPvSpec(pv!, harnessName('pygrub', runId), marker);
    await domuLifecycle(host, spec, {
      kind: 'pygrub',
      consoleType: 'pv',
      ready: readyPattern(marker),
      timeouts: params.timeoutsMs,
      findings,
      // the menu entry's own argument: the kernel came through pygrub, not by path
      inside: { marker, cmdline: [PYGRUB_BOOT_ARGUMENT] },
    });
  });

  test('HVM domU: create, list, console, shutdown, no trace (needs vmx/svm and hap or shadow paging)', async ({ host, findings }) => {
    const params = xenParams(host);
    const info = await new Xl(host).info();
    const hvm = hvmSupport(info.virtCaps);
    findings.record('hvm_support', hvm.why);
    test.skip(!hvm.usable, `${host.name} cannot run HVM guests: ${hvm.why}`);
    const g = params.hvmGuest;
    test.skip(!g, `${host.name} can run HVM guests (${hvm.why}), but suites.xen.hvmGuest names no guest disk to boot`);
    const spec: XlDomainSpec = {
      type: 'hvm',
      name: harnessName('hvm', runId),
      memoryMiB: g!.memoryMiB,
      vcpus: g!.vcpus,
      disks: [{ target: g!.disk, vdev: 'hda' }],
      vifs: g!.bridge ? [{ mac: randomXenMac(), bridge: g!.bridge }] : [],
      serial: 'pty',
      boot: 'c',
      onReboot: 'destroy',
    };
    await domuLifecycle(host, spec, {
      kind: 'hvm',
      consoleType: 'serial',
      ready: new RegExp(g!.readyPattern),
      timeouts: params.timeoutsMs,
      findings,
    });
  });

  // A dom0 reboot under nested TCG: minutes. Tagged so a run can leave it out (--grep-invert @xen-reboot).
  test('autostart: a domU linked in /etc/xen/auto is running again after a dom0 reboot (xendomains) @xen-reboot', async ({
    host,
    findings,
  }) => {
    const params = xenParams(host);
    const pv = params.pvGuest;
    test.skip(!pv, `${host.name}: suites.xen.pvGuest is not configured (a PV kernel and ramdisk on the host)`);
    test.skip(!params.autostart, `${host.name}: suites.xen.autostart is not configured (xendomains' auto directory)`);
    const xl = new Xl(host);
    const marker = newMarker();
    const spec = kernelPvSpec(pv!, harnessName('auto', runId), marker);
    const { cfgPath, linkPath } = autostartPaths(params.autostart!, spec.name);
    const guestLog = `/var/log/xen/console/guest-${spec.name}.log`;
    try {
      await test.step(`write ${cfgPath}, read it back through xl create -n, link it as ${linkPath}`, async () => {
        await attach(`${spec.name}.cfg`, await xl.writeConfig(cfgPath, spec));
        expect((await xl.dryRun(cfgPath)).name).toBe(spec.name);
        await host.run(`ln -s ${shellQuote(cfgPath)} ${shellQuote(linkPath)}`, { timeoutMs: 30_000, check: true });
        expect((await host.run(`readlink ${shellQuote(linkPath)}`, { timeoutMs: 30_000, check: true })).stdout.trim()).toBe(cfgPath);
        expect(listed(await xl.list(), spec.name), `${spec.name} is not running before the reboot`).toBeUndefined();
      });

      const t0 = performance.now();
      const back = await test.step('reboot dom0 (its way back proven by a new boot_id)', () => host.reboot('os'));
      findings.record('autostart_reboot_to_ssh_s', s(back.ms), 's');

      const domid = await test.step(`xl list: xendomains started ${spec.name} at boot`, async () => {
        const log = (await host.run('cat /var/log/xen/xendomains.log', { timeoutMs: 30_000 })).stdout;
        await attach('xendomains.log', log);
        const started = xendomainsStarted(log, spec.name);
        expect(started, `xendomains' log names ${spec.name}`).toBeDefined();
        expect(started!.ok, `xendomains: ${started!.line}`).toBe(true);
        const d = await poll(() => xl.domain(spec.name), params.timeoutsMs.create);
        expect(d, `${spec.name} in xl list after the reboot`).toBeDefined();
        const { paused, shutdown, crashed, dying } = d!.state;
        expect({ paused, shutdown, crashed, dying }, `state ${d!.stateText}`).toEqual({
          paused: false,
          shutdown: false,
          crashed: false,
          dying: false,
        });
        return d!.id;
      });

      await test.step(`${spec.name}'s console log (xenconsoled): this run's ready marker`, async () => {
        const ready = readyPattern(marker);
        const seen = await poll(async () => {
          const r = await host.run(`cat ${shellQuote(guestLog)}`, { timeoutMs: 30_000 });
          return ready.test(r.stdout) ? r.stdout : undefined;
        }, params.timeoutsMs.marker);
        if (seen) await attach(`console-${spec.name}.log`, seen);
        expect(seen, `${ready} in ${guestLog}`).toBeDefined();
        findings.record('autostart_reboot_to_domu_ready_s', s(performance.now() - t0), 's');
      });

      await test.step(`xl shutdown ${spec.name}, then ${linkPath} removed`, async () => {
        await xl.shutdown(spec.name, { timeoutMs: params.timeoutsMs.shutdown, domid });
        await host.run(`rm ${shellQuote(linkPath)}`, { timeoutMs: 30_000, check: true });
      });
    } finally {
      await host.run(`rm -f ${shellQuote(linkPath)} ${shellQuote(cfgPath)}`, { timeoutMs: 30_000 }).catch(() => undefined);
      if (await xl.domain(spec.name).catch(() => undefined)) await xl.destroy(spec.name).catch(() => undefined);
    }
  });
});

/** `fn` every 2 s until it gives a value or `timeoutMs` has passed (then undefined). */
async function poll<T>(fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined || Date.now() >= deadline) return v;
    await new Promise((r) => setTimeout(r, 2000));
  }
}

interface LifecycleOptions {
  /** Names the findings: domu_create_s, pygrub_create_s, hvm_create_s… */
  kind: 'domu' | 'pygrub' | 'hvm';
  consoleType: 'pv' | 'serial';
  ready: RegExp;
  timeouts: XenParams['timeoutsMs'];
  findings: { record(key: string, value: string | number | boolean, unit?: string): void };
  /** For our PV guest: the marker its /proc/cmdline must carry, and other arguments it must carry. */
  inside?: { marker: string; cmdline: readonly string[] };
}

async function domuLifecycle(host: Host, spec: XlDomainSpec, o: LifecycleOptions): Promise<void> {
  const xl = new Xl(host);
  const serial = await host.console();
  const watch = watchForDeath(serial, `Xen or dom0 dying while ${spec.name} lives`);
  const cfgPath = `${CFG_DIR}/${spec.name}.cfg`;
  const kind = o.kind;
  let guestConsole: Console | undefined;
  let identity: DomainIdentity | undefined;
  let done = false;
  try {
    await watch.guard(
      test.step(`write ${cfgPath} and read it back through xl create -n`, async () => {
        const text = await xl.writeConfig(cfgPath, spec);
        await attach(`${spec.name}.cfg`, text);
        const parsed = await xl.dryRun(cfgPath);
        await attach(`xl-create-n-${spec.name}.json`, JSON.stringify(parsed.raw, null, 2));
        expect(parsed.name).toBe(spec.name);
        expect(parsed.maxMemKiB).toBe(spec.memoryMiB * 1024);
        if (spec.type === 'pv')
          expect({ kernel: parsed.kernel, bootloader: parsed.bootloader, cmdline: parsed.cmdline }).toEqual({
            kernel: spec.kernel,
            bootloader: spec.bootloader,
            cmdline: spec.extra,
          });
        expect(parsed.disks.map((d) => d.target)).toEqual((spec.disks ?? []).map((d) => d.target));
        expect(parsed.nics.map((n) => n.mac)).toEqual((spec.vifs ?? []).map((v) => v.mac));
      }),
    );

    const created = await watch.guard(
      test.step(`xl create ${spec.name} (paused, console attached, unpaused)`, () =>
        createDomain(
          host,
          xl,
          spec,
          {
            cfgPath,
            consoleLog: test.info().outputPath(`${spec.name}-console.log`),
            consoleType: o.consoleType,
            timeoutMs: o.timeouts.create,
          },
          attach,
        )),
    );
    guestConsole = created.console;
    identity = { domid: created.domid, name: spec.name, cfgPath, ...(created.uuid ? { uuid: created.uuid } : {}) };
    o.findings.record(`${kind}_create_s`, s(created.createMs), 's');

    await watch.guard(
      test.step(`xl list shows ${spec.name} running or blocked with its memory and vCPUs`, async () => {
        const d = listed(await xl.list(), spec.name);
        expect(d, `${spec.name} in xl list`).toBeDefined();
        // r/b, or no flag at all: runnable, waiting for the CPU dom0 holds while it runs `xl list`.
        const { paused, shutdown, crashed, dying } = d!.state;
        expect({ paused, shutdown, crashed, dying }, `state ${d!.stateText}`).toEqual({
          paused: false,
          shutdown: false,
          crashed: false,
          dying: false,
        });
        expect({ id: d!.id, memMiB: d!.memMiB, vcpus: d!.vcpus }).toEqual({ id: created.domid, memMiB: spec.memoryMiB, vcpus: spec.vcpus });
        const os = await host.os();
        for (const [i, vif] of (spec.vifs ?? []).entries()) {
          if (!vif.bridge) continue;
          const r = await host.run(bridgeMembersScript(os, vif.bridge), { timeoutMs: 30_000, check: true });
          const nic = backendNic(os, created.domid, i);
          expect(parseBridgeMembers(os, r.stdout), `${nic}: the vif's backend is a member of ${vif.bridge} in dom0`).toContain(nic);
        }
      }),
    );

    await watch.guard(
      test.step(`console of ${spec.name} (xl console over SSH): the guest's marker, then a command inside it`, async () => {
        await guestConsole!.expect(o.ready, { from: 0, timeoutMs: o.timeouts.marker, what: `the guest's ready line ${o.ready}` });
        o.findings.record(`${kind}_console_marker_s`, s(performance.now() - created.startedAt), 's');
        const shell = await guestShell(host, spec.name, guestConsole!, 60_000);
        if (!o.inside) {
          await attach(`inside-${spec.name}.txt`, (await shell.run('uname -a', { timeoutMs: 60_000, check: true })).stdout);
          return;
        }
        const r = await shell.run(GUEST_FACTS, { timeoutMs: 60_000, check: true });
        await attach(`inside-${spec.name}.txt`, r.stdout);
        const facts = keyValues(r.stdout);
        expect(facts.get('hypervisor'), 'the guest runs on Xen (/sys/hypervisor/type)').toEqual(['xen']);
        expect(facts.get('cmdline')?.[0], "the guest's /proc/cmdline carries this run's marker").toContain(markerArgument(o.inside.marker));
        for (const arg of o.inside.cmdline) expect(facts.get('cmdline')?.[0], `the guest's /proc/cmdline carries ${arg}`).toContain(arg);
        // the vif of the cfg reached the guest: netfront's eth0 has its MAC
        expect(facts.get('mac') ?? [], 'MACs of the guest NICs').toEqual((spec.vifs ?? []).map((v) => v.mac));
      }),
    );

    const stop = await watch.guard(
      test.step(`xl shutdown ${spec.name} (xl destroy after ${o.timeouts.shutdown / 1000} s)`, () =>
        xl.shutdown(spec.name, { timeoutMs: o.timeouts.shutdown, domid: created.domid })),
    );
    // The guest is gone, so is xenconsole; the console only has its record left.
    await guestConsole.close();
    o.findings.record(`${kind}_shutdown_s`, s(stop.ms), 's');
    o.findings.record(`${kind}_shutdown_method`, stop.method);
    expect.soft(stop.method, `the guest honoured xl shutdown${stop.reason ? ` (${stop.reason})` : ''}`).toBe('shutdown');

    await watch.guard(
      test.step(`${spec.name} is gone: not listed, no device model, vif or xenstore entry`, async () => {
        expect(listed(await xl.list(), spec.name), `${spec.name} still in xl list`).toBeUndefined();
        const { leftovers, evidence } = await leftoversOf(host, identity!);
        if (!isClean(leftovers)) await attach('leftovers-evidence.txt', evidence);
        expect(leftovers).toEqual({ xenstore: [], vifs: [], deviceModels: [], processes: [] });
      }),
    );
    done = true;
  } finally {
    watch.stop();
    if (guestConsole) await attach(`console-${spec.name}.log`, guestConsole.text(0)).catch(() => undefined);
    await guestConsole?.close().catch(() => undefined);
    if (!done) {
      await attachDomainLogs(host, spec.name, attach).catch(() => undefined);
      // Whatever state it is in, the domain does not outlive the test.
      if (await xl.domain(spec.name).catch(() => undefined)) await xl.destroy(spec.name).catch(() => undefined);
    }
    await host.run(`rm -f ${shellQuote(cfgPath)}`).catch(() => undefined);
  }
  expect(watch.died, 'no panic on the Xen serial console').toBeUndefined();
}
