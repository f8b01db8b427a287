/**
 * The nested guest of the snapshot-kexec suite (seed 003): a static busybox taken from the
 * runner, its applet links and an /init that becomes the memory workload
 * (suites/snapshot-kexec/mem-program.ts), which prints the ticks and verify lines the suite
 * reads (suites/snapshot-kexec/marker.ts). One cpio, built in memory.
 */
import { type CpioEntry, newcArchive } from './cpio.js';

/** PID 1 of the guest: reads the marker's parameters, then becomes the memory workload. */
export function guestInit(): string {
  return `#!/bin/sh
mount -t proc proc /proc
read -r cmdline < /proc/cmdline
seed=; mib=; ms=
for a in $cmdline; do
  case "$a" in
    labrig.seed=*) seed="\${a#labrig.seed=}";;
    labrig.pattern_mib=*) mib="\${a#labrig.pattern_mib=}";;
    labrig.verify_ms=*) ms="\${a#labrig.verify_ms=}";;
  esac
done
read -r b < /proc/sys/kernel/random/boot_id
echo "labrig-guest ready: seed $seed, pattern $mib MiB, boot_id $b"
exec /bin/labrig-mem "$seed" "$mib" "$ms"
`;
}

const APPLETS = ['sh', 'mount'];

/** True for an ELF executable with no program interpreter (PT_INTERP): it runs with no libraries. */
export function isStaticElf(file: Buffer): boolean {
  if (file.length < 64 || file.readUInt32BE(0) !== 0x7f454c46 || file[4] !== 2) return false;
  const phoff = Number(file.readBigUInt64LE(0x20));
  const phentsize = file.readUInt16LE(0x36);
  const phnum = file.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > file.length) return false;
    if (file.readUInt32LE(at) === 3) return false;
  }
  return true;
}

/** The initramfs: a static busybox (from the runner), its applet links, the memory workload and /init. */
export function guestInitramfs(staticBusybox: Buffer, memProgram: Buffer): Buffer {
  const entries: CpioEntry[] = [
    ...['bin', 'proc', 'dev'].map((path): CpioEntry => ({ type: 'dir', path, mode: 0o755 })),
    { type: 'file', path: 'bin/busybox', mode: 0o755, data: staticBusybox },
    ...APPLETS.map((a): CpioEntry => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    { type: 'file', path: 'bin/labrig-mem', mode: 0o755, data: memProgram },
    { type: 'file', path: 'init', mode: 0o755, data: Buffer.from(guestInit()) },
    // The kernel opens /dev/console for init before anything could mount devtmpfs.
    { type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
  ];
  return newcArchive(entries);
}
