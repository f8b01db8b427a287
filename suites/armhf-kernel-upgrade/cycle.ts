/**
 * Seed 000's procedure, runner-independent (the spec wraps it in Allure steps through its
 * Recorder, the benchmark times it): hook installed, guest provisioned, an installer boot
 * that puts kernel A into the 9p /boot, boot on A, kernel B installed by the guest, shut down,
 * start on B, then a guest reboot that must end with the domain shut off. Cleanup runs
 * whatever happened. Every check that fails throws with what was seen; `out` holds what was
 * measured so far, also when a step fails.
 */
import { ProductError } from '../../drivers/errors.js';
import { type LibvirtEndpoint, Virsh } from '../../drivers/libvirt.js';
import type { Recorder } from '../../drivers/recorder.js';
import { shellQuote } from '../../drivers/ssh.js';
import { GUEST_FAILED } from '../../images/contracts/armhf-guest.js';
import type { Progress } from '../../images/debs.js';
import { guestMaterial } from './guest-plan.js';
import { type GuestBoot, GuestSession } from './guest-session.js';
import { ArmhfHostSide, type HostShell } from './host-side.js';
import {
  type ArmhfParams,
  armhfDomainSpec,
  armhfPaths,
  type BootFrom,
  checkKernelMatchesLink,
  domainProblems,
  rebootedInPlace,
} from './plan.js';
import { describeView, type HostView, isMappedSymlink, kernelVersionOf } from './share-view.js';
import { Teardown } from './teardown.js';

export interface CycleContext {
  host: HostShell;
  params: ArmhfParams;
  recorder: Recorder;
  /** Local file for the guest's console (all boots). */
  consoleLog: string;
  progress: Progress;
  /** A QEMU build's qemu-system-arm (components.qemuDir); default: libvirt's. */
  emulator?: string | undefined;
  /** The libvirtd virsh talks to (a build's own, components.libvirtDir); default: the host's. */
  libvirt?: LibvirtEndpoint;
  /** The host's accelerator: KVM on an arm64 server that runs AArch32 guests, TCG elsewhere. */
  accel: 'kvm' | 'tcg';
}

export interface ArmhfOutcome {
  libvirtVersion?: string;
  qemuVersion?: string;
  kernelBefore?: string;
  kernelAfter?: string;
  boots: Record<string, GuestBoot & { kernel?: string }>;
  /** `prepare begin` runs of the hook by libvirt (runs by hand excluded). */
  hookRuns?: number;
  libvirtdRestartMs: number[];
  /** The guest's install command (kernel A into the empty share) and upgrade command (kernel B), each alone. */
  installCommandMs?: number;
  upgradeCommandMs?: number;
  /** From "install kernel B" to `uname -r` saying B after the restart. */
  upgradeCycleMs?: number;
  rebootToShutOffMs?: number;
  rebootEndState?: string;
  /** /boot in the guest's /proc/mounts (source, point, type): the autofs line too under x-systemd.automount. */
  bootMounts?: string;
  hostViewBeforeHook?: string;
  hostViewAfterHook?: string;
  guestReadlinkVmlinuz?: string;
  guestViewOfHostSymlink?: string;
  hookBefore?: string;
  hookAfter?: string;
  totalMs?: number;
}

const linkOf = (v: HostView) => v.content ?? v.linkTarget ?? '';

export async function armhfKernelUpgrade(ctx: CycleContext, out: ArmhfOutcome): Promise<void> {
  const { host, params, recorder } = ctx;
  const step = <T>(title: string, body: () => Promise<T>) => recorder.step(title, {}, body);
  const paths = armhfPaths(params);
  const virsh = new Virsh(host, ctx.libvirt);
  const side = new ArmhfHostSide(host, params, paths);
  const undo = new Teardown();
  const vm = params.vm;
  const t0 = performance.now();
  const fail = (message: string) => new ProductError('mismatch', message, { host: host.name });
  let primary: unknown;
  try {
    await step('libvirt and QEMU versions', async () => {
      // the QEMU the guest runs: the domain's own emulator (a build) when it names one
      const v = await virsh.version(ctx.emulator);
      out.libvirtVersion = v.libvirt;
      out.qemuVersion = v.hypervisor;
    });
    await step(`clear what an interrupted run left (${vm}, ${paths.share}, the hook)`, async () => {
      await virsh.remove(vm);
      await side.unprovision();
      if (await side.restoreLeftoverHook()) out.libvirtdRestartMs.push(await side.restartLibvirtd());
    });
    const material = await step('guest material', () => guestMaterial(params, paths, ctx.progress));
    const { plan } = material;

    await step(`install the boot-share hook ${params.hookPath}, restart libvirtd so it is noticed`, async () => {
      out.hookBefore = await side.hookFingerprint();
      undo.push('restore the hook as it was, restart libvirtd so it forgets ours', async () => {
        await side.restoreHook();
        out.libvirtdRestartMs.push(await side.restartLibvirtd());
        out.hookAfter = await side.hookFingerprint();
        if (out.hookAfter !== out.hookBefore) throw fail(`hook not restored: sha256 ${out.hookAfter}, was ${out.hookBefore}`);
      });
      await side.installHook();
      out.libvirtdRestartMs.push(await side.restartLibvirtd());
    });

    await step(`provision ${paths.share} (owner ${params.qemuUser}) and the disk ${paths.disk}`, async () => {
      undo.push(`remove ${paths.share}, ${paths.disk}, ${paths.installDir}`, async () => {
        await side.unprovision();
        const left = await side.leftovers();
        if (left.length) throw fail(`still on the host: ${left.join(', ')}`);
      });
      await side.provision(material.uploads, material.copies);
    });

    const password = plan.login.passwordEnv ? process.env[plan.login.passwordEnv] : undefined;
    const guest = new GuestSession({
      vm,
      hostName: host.name,
      virsh,
      ssh: host.ssh,
      logPath: ctx.consoleLog,
      recorder,
      login: { user: plan.login.user, password },
      bootTimeoutMs: params.timeoutsMs.boot,
      failOn: [new RegExp(GUEST_FAILED)],
    });
    undo.push(`destroy and undefine ${vm}`, async () => {
      await guest.close();
      await virsh.remove(vm);
      if ((await virsh.state(vm)) !== 'absent') throw fail(`${vm} is still defined`);
    });

    let uuid: string | undefined;
    const define = (from: BootFrom) =>
      step(
        `define ${vm}: armv7l virt, highmem=off, kernel from the ${from === 'share' ? 'share (virtio-vmlinuz)' : 'installer files'}`,
        async () => {
          const spec = armhfDomainSpec({
            params,
            paths,
            from,
            cmdline: plan.cmdline,
            diskFormat: plan.diskFormat,
            repoTag: plan.repoTag,
            uuid,
            emulator: ctx.emulator,
            accel: ctx.accel,
          });
          const { xml, summary } = await virsh.define(spec);
          if (uuid && summary.uuid !== uuid) throw fail(`redefining ${vm} gave UUID ${summary.uuid}, not ${uuid}`);
          uuid = summary.uuid;
          await recorder.attach(`domain-${from}.xml`, xml, 'application/xml');
          const problems = domainProblems(summary, spec);
          if (problems.length) throw fail(`libvirt's definition of ${vm}: ${problems.join('; ')}`);
        },
      );
    const serialEvidence = async (label: string) => {
      const r = await host.run(`cat ${shellQuote(paths.serialLog)}`, { timeoutMs: 30_000 });
      if (r.code === 0) await recorder.attach(`serial-${label}.log`, r.stdout, 'text/plain');
      return r.stdout;
    };
    const boot = async (label: string) => {
      const b = await guest.boot();
      out.boots[label] = b;
      // Listing /boot first: an x-systemd.automount /boot is mounted on first access (autofs, then 9p).
      const mounts = (await guest.run("ls /boot >/dev/null; grep ' /boot ' /proc/mounts", { check: true })).stdout.trim();
      if (!/^virtio-boot \/boot 9p /m.test(mounts)) throw fail(`/boot in the guest is not the 9p share: ${mounts}`);
      out.bootMounts = mounts
        .split('\n')
        .map((l) => l.split(' ').slice(0, 3).join(' '))
        .join('; ');
      return b;
    };
    const runningKernel = async (label: string, expect?: string) => {
      const uname = (await guest.run('uname -r', { check: true })).stdout.trim();
      const link = (await guest.run('readlink /boot/vmlinuz', { check: true })).stdout.trim();
      out.guestReadlinkVmlinuz = link;
      const k = checkKernelMatchesLink(host.name, uname, link, expect);
      out.boots[label]!.kernel = k;
      return k;
    };

    await define('installer');
    await step('installer boot: the guest installs its kernel into the 9p /boot', async () => {
      await boot('installer');
      const t = performance.now();
      await guest.run(plan.installCommand, { timeoutMs: params.timeoutsMs.upgrade, check: true });
      out.installCommandMs = Math.round(performance.now() - t);
      const link = (await guest.run('readlink /boot/vmlinuz', { check: true })).stdout.trim();
      out.kernelBefore = kernelVersionOf(link);
      if (!out.kernelBefore || (plan.expectFrom && out.kernelBefore !== plan.expectFrom))
        throw fail(`after "${plan.installCommand}" /boot/vmlinuz names "${link}", expected vmlinuz-${plan.expectFrom ?? '<version>'}`);
      await guest.endWith('poweroff', params.timeoutsMs.shutdown);
      await serialEvidence('installer');
    });
    const a = out.kernelBefore!;

    const mappedLinks = async (kernel: string, label: string) => {
      const views = [await side.view('vmlinuz'), await side.view('initrd.img')];
      await recorder.attach(`host-view-${label}.txt`, views.map((v) => `${v.path}: ${describeView(v)}`).join('\n'), 'text/plain');
      for (const [i, v] of views.entries()) {
        const want = `${i === 0 ? 'vmlinuz' : 'initrd.img'}-${kernel}`;
        if (v.type !== 'regular' || linkOf(v).split('/').pop() !== want)
          throw fail(
            `${v.path} should be the guest's link to ${want}, stored as a regular file holding the target; it is ${describeView(v)}`,
          );
        if (v.xattrs !== undefined && !isMappedSymlink(v))
          throw fail(`${v.path}: user.virtfs.mode does not say symlink: ${describeView(v)}`);
      }
      return views;
    };
    await step(`host view before the hook: vmlinuz is a regular file holding vmlinuz-${a}, user.virtfs.mode says symlink`, async () => {
      out.hostViewBeforeHook = describeView((await mappedLinks(a, 'installed'))[0]!);
    });

    await define('share');
    await step(`boot on kernel ${a}: the hook points virtio-vmlinuz at it, uname -r matches /boot/vmlinuz`, async () => {
      await boot('kernel A');
      const [v] = await side.checkHookLinks({ vmlinuz: `vmlinuz-${a}`, initrd: `initrd.img-${a}` });
      out.hostViewAfterHook = describeView(v!);
      await runningKernel('kernel A', a);
      // A real host symlink in a mapped share: the guest's view of it, recorded as found.
      const seen = await guest.run(
        'ls -l /boot; readlink /boot/virtio-vmlinuz; echo "readlink-exit=$?"; cat /boot/virtio-vmlinuz >/dev/null; echo "read-exit=$?"',
      );
      await recorder.attach('guest-boot-listing.txt', seen.stdout, 'text/plain');
      out.guestViewOfHostSymlink = seen.stdout
        .split('\n')
        .filter((l) => /exit=|readlink|cat:/.test(l))
        .join('; ');
    });

    await step('the hook is idempotent and does nothing for a domain without a boot share', async () => {
      const xml = await virsh.dumpxml(vm);
      const before = await side.view('virtio-vmlinuz');
      for (let i = 0; i < 2; i++) {
        const r = await side.runHook(vm, 'prepare', xml);
        if (r.code !== 0) throw fail(`hook run by hand failed (exit ${r.code}): ${r.stderr}`);
      }
      const after = await side.view('virtio-vmlinuz');
      if (describeView(after) !== describeView(before))
        throw fail(`a second hook run changed virtio-vmlinuz: ${describeView(before)} → ${describeView(after)}`);
      const last = (await side.hookLog()).slice(-2);
      if (!last.every((e) => e.links.length === 2 && e.links.every((l) => !l.changed)))
        throw fail(`hook runs by hand were not no-ops: ${JSON.stringify(last)}`);
      const other = `${vm}-noshare`;
      const r = await side.runHook(other, 'prepare', xml.replace(`<name>${vm}</name>`, `<name>${other}</name>`));
      const created = await host.run(`ls -d ${shellQuote(`${params.shareRoot}/${other}-boot`)} 2>/dev/null`);
      if (r.code !== 0 || created.code === 0)
        throw fail(`hook for ${other} (no share): exit ${r.code}, share created: ${created.code === 0}`);
    });

    const tCycle = performance.now();
    let b = '';
    await step(`install the newer kernel in the guest: ${plan.upgradeCommand}`, async () => {
      const t = performance.now();
      await guest.run(plan.upgradeCommand, { timeoutMs: params.timeoutsMs.upgrade, check: true });
      out.upgradeCommandMs = Math.round(performance.now() - t);
      const link = (await guest.run('readlink /boot/vmlinuz', { check: true })).stdout.trim();
      b = kernelVersionOf(link) ?? '';
      if (!b || b === a || (plan.expectTo && b !== plan.expectTo))
        throw fail(`after the upgrade /boot/vmlinuz names "${link}" (running ${a}, expected ${plan.expectTo ?? 'a newer kernel'})`);
    });
    await step(
      `host view after the upgrade: vmlinuz holds vmlinuz-${b}, virtio-vmlinuz still points at ${a} until the hook runs`,
      async () => {
        await mappedLinks(b, 'upgraded');
        await side.checkHookLinks({ vmlinuz: `vmlinuz-${a}`, initrd: `initrd.img-${a}` });
      },
    );
    await step('shut down from inside the guest', async () => {
      await guest.endWith('poweroff', params.timeoutsMs.shutdown);
      await serialEvidence('kernel-A');
    });
    await step(`start: the hook points virtio-vmlinuz at ${b}, and the guest runs ${b}`, async () => {
      await boot('kernel B');
      await side.checkHookLinks({ vmlinuz: `vmlinuz-${b}`, initrd: `initrd.img-${b}` });
      out.kernelAfter = await runningKernel('kernel B', b);
    });
    out.upgradeCycleMs = Math.round(performance.now() - tCycle);

    await step('reboot inside the guest: the domain ends shut off (on_reboot=destroy), not on the old kernel', async () => {
      const r = await guest.endWith('reboot', params.timeoutsMs.shutdown);
      out.rebootToShutOffMs = r.ms;
      const s = await virsh.stateReason(vm);
      out.rebootEndState = `${s.state} (${s.reason})`;
      const serial = await serialEvidence('kernel-B-reboot');
      const kernels = serial.match(/Booting Linux on physical CPU/g)?.length ?? 0;
      if (rebootedInPlace(r.after) || kernels > 1)
        throw fail(`the guest came back after reboot (console shows a kernel starting again; ${kernels} boots in ${paths.serialLog})`);
    });

    const log = await side.hookLog();
    await recorder.attach('boot-hook.log', log.map((e) => JSON.stringify(e)).join('\n'), 'application/x-ndjson');
    out.hookRuns = log.length - 2;
  } catch (e) {
    primary = e;
    throw e;
  } finally {
    try {
      await undo.run(recorder, host.name);
    } catch (e) {
      // The clean-up's own failure matters only when nothing failed before it.
      // biome-ignore lint/correctness/noUnsafeFinally: the primary error is already on its way out
      if (!primary) throw e;
      recorder.log(`${(e as Error).message}`);
    }
    out.totalMs = Math.round(performance.now() - t0);
  }
}
