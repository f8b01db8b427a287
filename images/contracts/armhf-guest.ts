/**
 * The armhf guest's contract with the kernel-upgrade suite (seed 000), for the guest that
 * images/armhf-guest.ts builds from Debian's packages: how it boots, the command that installs a
 * kernel from its pool (`<GUEST_KERNEL_INSTALL> <version>`), and what it prints on its console.
 */
/** The command in the guest that installs one kernel of its pool, the way the kernel package does. */
export const GUEST_KERNEL_INSTALL = '/usr/sbin/labrig-kernel-install';
/** Printed by the guest when its boot went wrong in a way it can tell (a death string for the suite). */
export const GUEST_FAILED = 'LABRIG-GUEST-FAILED';
/** Printed by the guest's rcS once /boot is mounted; carries the running kernel. */
export const GUEST_UP = /labrig-guest: up on (\S+)/;
/** Root on the virtio disk; the console is the PL011 (ttyAMA0). */
export const GUEST_CMDLINE = 'console=ttyAMA0,115200 root=/dev/vda rw';
