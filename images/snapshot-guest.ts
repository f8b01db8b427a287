/**
 * The nested guest of the snapshot-kexec suite (seed 003): a static busybox taken from the
 * runner, its applet links and an /init that writes the pattern into RAM and prints the ticks
 * of contracts/snapshot-guest.ts on its serial port. One cpio, built in memory.
 */
import { newcArchive, type CpioEntry } from './cpio.js';
import { PATTERN_KIB_PARAM, PATTERN_PREFIX, READY_PREFIX, SEED_PARAM, TICK_PREFIX } from './contracts/snapshot-guest.js';

/** PID 1 of the guest. Forks are slow under nested TCG: builtins wherever busybox has one. */
export function guestInit(): string {
  return `#!/bin/sh
mount -t proc proc /proc
read -r cmdline < /proc/cmdline
seed=; kib=
for a in $cmdline; do
  case "$a" in
    ${SEED_PARAM}=*) seed="\${a#${SEED_PARAM}=}";;
    ${PATTERN_KIB_PARAM}=*) kib="\${a#${PATTERN_KIB_PARAM}=}";;
  esac
done
yes "${PATTERN_PREFIX} $seed" | head -c $((kib * 1024)) > /pattern
read -r b < /proc/sys/kernel/random/boot_id
echo "${READY_PREFIX} seed $seed, pattern $kib KiB, boot_id $b"
n=0
while :; do
  n=$((n + 1))
  set -- $(sha256sum /pattern)
  read -r b < /proc/sys/kernel/random/boot_id
  echo "${TICK_PREFIX} $n $b $1"
  sleep 1
done
`;
}

const APPLETS = ['sh', 'mount', 'yes', 'head', 'sha256sum', 'sleep', 'echo'];

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

/** The initramfs: a static busybox (from the runner), its applet links and /init. */
export function guestInitramfs(staticBusybox: Buffer): Buffer {
  const entries: CpioEntry[] = [
    ...['bin', 'proc', 'dev'].map((path): CpioEntry => ({ type: 'dir', path, mode: 0o755 })),
    { type: 'file', path: 'bin/busybox', mode: 0o755, data: staticBusybox },
    ...APPLETS.map((a): CpioEntry => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    { type: 'file', path: 'init', mode: 0o755, data: Buffer.from(guestInit()) },
    // The kernel opens /dev/console for init before anything could mount devtmpfs.
    { type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
  ];
  return newcArchive(entries);
}
