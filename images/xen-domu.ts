/**
 * The PV domU that emu-xen carries for the Xen suite: Debian's amd64 kernel (it boots as a
 * PV guest as well as dom0) and a busybox initramfs. The guest's contract with the suite:
 * it prints `labrig-domu ready: <value of labrig.marker= on its command line>` on hvc0 and
 * then offers a root shell there. The marker is printed by the guest's own init, not echoed
 * by the kernel (the kernel's "Command line:" shows `labrig.marker=…`, never "ready:"), so
 * seeing it proves this very guest reached userspace.
 */
import { join } from 'node:path';
// The guest is built to the Xen suite's contract (suites/xen/guest.ts), so the suite can also
// run against this guest copied onto a real Xen host.
import { DOMU_READY_PREFIX } from './contracts/xen-domu.js';
import { CONSOLE_AND_NULL, writeInitramfs } from './cpio.js';
import { RootfsBuilder } from './rootfs.js';

const APPLETS = [
  'insmod',
  'sh',
  'init',
  'mount',
  'sed',
  'cat',
  'uname',
  'echo',
  'poweroff',
  'setsid',
  'cttyhack',
  'sleep',
  'ls',
  'dmesg',
  'grep',
];

// busybox init, so `xl shutdown` works: the kernel's Xen shutdown watch runs /sbin/poweroff,
// which signals init, which runs the shutdown actions and powers the domain off.
const inittab = `::sysinit:/etc/rcS
hvc0::respawn:-/bin/sh
::shutdown:/bin/echo labrig-domu: shutting down
`;

const rcS = `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# every sysrq, so the suite can ask for the task list (xl sysrq <domU> t) when no shell comes
echo 1 > /proc/sys/kernel/sysrq
while read -r m; do insmod "$m" || echo "rcS: insmod $m failed"; done < /etc/modules.order
marker=$(sed -n 's/.*labrig\\.marker=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
echo "${DOMU_READY_PREFIX}\${marker:-none} ($(uname -r), hypervisor $(cat /sys/hypervisor/type 2>/dev/null || echo none))"
`;

/** Writes the domU's initramfs to `outFile` from busybox and the kernel's modules unpacked in `pkgRoot`; returns its size. */
export async function buildDomuInitramfs(pkgRoot: string, workDir: string, outFile: string, kernelVersion: string): Promise<number> {
  const root = new RootfsBuilder(join(workDir, 'domu-root'), pkgRoot);
  await root.mkdirs(['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'root']);
  await root.mkdirs(['tmp'], 0o1777);
  await root.busyboxApplets('/bin/busybox', APPLETS);
  // netfront: the vif dom0 gives the guest shows up as its eth0, with the MAC of the cfg
  const modules = await root.kernelModules(kernelVersion, ['xen-netfront', 'xen-blkfront']);
  await root.write('/etc/modules.order', `${modules.join('\n')}\n`);
  await root.write('/etc/inittab', inittab);
  await root.write('/etc/rcS', rcS, 0o755);
  await root.write('/etc/passwd', 'root::0:0:root:/root:/bin/sh\n');
  await root.write('/etc/profile', 'export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n');
  await root.write('/init', '#!/bin/sh\nexec /sbin/init\n', 0o755);
  return writeInitramfs(root.dir, CONSOLE_AND_NULL, outFile);
}
