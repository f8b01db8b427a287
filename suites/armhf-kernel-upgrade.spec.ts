/**
 * Seed 000 (DOMAIN.md §1): an armhf libvirt guest on an arm64 host boots with direct kernel
 * boot from its own /boot, shared by 9p in mapped mode, and survives kernel upgrades: the
 * libvirt hook turns the guest's links into host symlinks before each start, and a guest
 * reboot ends the domain instead of coming back on the kernel QEMU already holds.
 */
import { join } from 'node:path';
import type { Recorder } from '../drivers/recorder.js';
import { stderrProgress } from '../images/debs.js';
import { hostAccel } from '../targets/accel.js';
import { qemuBuildBinary } from '../targets/components.js';
import { buildLibvirtdParams, libvirtEndpoint } from '../targets/components-libvirtd.js';
import { expect, logsDir, test } from '../targets/fixtures.js';
import { redactor, secretValues } from '../targets/recorders.js';
import { type ArmhfOutcome, armhfKernelUpgrade } from './armhf-kernel-upgrade/cycle.js';

const seconds = (ms: number | undefined) => (ms === undefined ? undefined : Math.round(ms / 100) / 10);

test.describe('armhf guest with a 9p /boot through kernel upgrades @armhf', () => {
  test('boots the kernel its /boot names, after an upgrade too, and a guest reboot ends shut off', async ({ host, findings, lab }) => {
    const declared = host.config.suites.armhfKernelUpgrade;
    test.skip(!declared, `${host.name} declares no suites.armhfKernelUpgrade`);
    if (!declared) return;
    // with a libvirt build: its hook dir and its restart, not the host's libvirt's
    const params = buildLibvirtdParams(host.config, declared);
    test.setTimeout(25 * 60_000);
    const redact = redactor(secretValues(lab));
    const recorder: Recorder = {
      step: (title, _params, body) => test.step(title, body),
      attach: async (name, content, contentType = 'text/plain') => {
        await test.info().attach(name, { body: typeof content === 'string' ? redact(content) : content, contentType });
      },
      log: (line) => process.stderr.write(`[${host.name}] ${redact(line)}\n`),
    };
    const consoleLog = join(logsDir(), `${host.name}-${params.vm}-console.log`);
    const out: ArmhfOutcome = { boots: {}, libvirtdRestartMs: [] };
    const accel = await hostAccel(host);
    findings.record('accel', accel.accel);
    findings.record('accel_evidence', accel.evidence);
    try {
      await armhfKernelUpgrade(
        {
          host,
          params,
          recorder,
          consoleLog,
          progress: stderrProgress,
          emulator: qemuBuildBinary(host.config, 'qemu-system-arm'),
          libvirt: libvirtEndpoint(host.config),
          accel: accel.accel,
        },
        out,
      );
    } finally {
      const record = (key: string, value: string | number | undefined, unit?: string) =>
        value !== undefined && findings.record(key, value, unit);
      record('libvirt_version', out.libvirtVersion);
      record('qemu_version', out.qemuVersion);
      record('kernel_before', out.kernelBefore);
      record('kernel_after', out.kernelAfter);
      for (const [label, b] of Object.entries(out.boots)) {
        const key = label.replace(/\W+/g, '_').toLowerCase();
        record(`boot_s_${key}`, seconds(b.resumeToLoginMs), 's');
        record(`start_to_login_s_${key}`, seconds(b.startToLoginMs), 's');
      }
      record('hook_runs', out.hookRuns);
      record('install_command_s', seconds(out.installCommandMs), 's');
      record('upgrade_command_s', seconds(out.upgradeCommandMs), 's');
      record('upgrade_cycle_s', seconds(out.upgradeCycleMs), 's');
      record('reboot_to_shut_off_s', seconds(out.rebootToShutOffMs), 's');
      record('reboot_end_state', out.rebootEndState);
      record('libvirtd_restart_ms_max', out.libvirtdRestartMs.length ? Math.max(...out.libvirtdRestartMs) : undefined, 'ms');
      record('guest_boot_mounts', out.bootMounts);
      record('host_view_before_hook', out.hostViewBeforeHook);
      record('host_view_after_hook', out.hostViewAfterHook);
      record('guest_readlink_vmlinuz', out.guestReadlinkVmlinuz);
      record('guest_view_of_host_symlink', out.guestViewOfHostSymlink);
      record('suite_s', seconds(out.totalMs), 's');
      await test
        .info()
        .attach(`console-${params.vm}.log`, { path: consoleLog, contentType: 'text/plain' })
        .catch(() => undefined);
    }

    expect(out.kernelAfter, 'the guest runs the newer kernel after shut down + start').not.toBe(out.kernelBefore);
    if (params.guest.kind === 'recipe') {
      expect(out.kernelBefore).toBe(params.guest.kernels[0]);
      expect(out.kernelAfter).toBe(params.guest.kernels[1]);
    }
    expect(out.rebootEndState, 'a guest reboot ends with the domain shut off').toMatch(/^shut off/);
    expect(out.hookRuns, 'libvirt ran the hook once per start: installer, kernel A, kernel B').toBe(3);
    expect(out.hookAfter, 'the hook is back as it was before the suite').toBe(out.hookBefore);
  });
});
