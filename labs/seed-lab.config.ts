/**
 * The lab of the seeds, as a lab engineer would describe it: copy, edit addresses and
 * fingerprints, and run with LABRIG_CONFIG=labs/<yours>.config.ts.
 * Secrets are named, never written: set the env vars on the runner (CI secrets).
 */
import { defineLab } from '../targets/config.js';

export const lab = defineLab({
  name: 'seed-lab',
  hosts: [
    {
      name: 'mp30-ar1',
      role: 'arm64-armhf',
      description: 'Gigabyte MP30-AR1 (X-Gene 1), Debian, armhf guests under KVM (seeds/000)',
      ssh: {
        address: '10.20.0.11',
        user: 'root',
        identityEnv: 'LAB_SSH_KEY',
        hostKey: 'SHA256:9Xa0m0mP0w4XUuGQ3J1Rm9P3e7m0r2b1S5o6k8cQp2E',
      },
      // USB-serial adapter on the runner.
      console: {
        kind: 'serial',
        path: '/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0',
        baud: 115200,
        login: { user: 'root', passwordEnv: 'LAB_CONSOLE_PASSWORD' },
      },
      // A switched PDU outlet driven by the lab's own script.
      power: {
        kind: 'command',
        on: ['/usr/local/bin/pdu', 'on', '3'],
        off: ['/usr/local/bin/pdu', 'off', '3'],
        status: ['/usr/local/bin/pdu', 'status', '3'],
        minOffMs: 10_000,
      },
      // Example fingerprints: replace each with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run on the host.
      expect: { arch: 'aarch64', features: ['libvirt', 'kvm', 'qemu'] },
      // Seed 000 runs the armv7l guest under KVM (AArch32 on the X-Gene cores).
      accel: 'kvm',
      suites: {
        hostFacts: { domcapsArch: 'armv7l' },
        armhfKernelUpgrade: {
          vm: 'armhf-vm',
          shareRoot: '/srv',
          restartLibvirtd: 'systemctl restart libvirtd',
          memoryMiB: 512,
          // The seed's virt-install: an installed Debian armhf disk, first booted on the installer's kernel.
          guest: {
            kind: 'prepared',
            disk: '/srv/armhf-vm.img',
            diskFormat: 'raw',
            installKernel: '/srv/armhf-install/vmlinuz',
            installInitrd: '/srv/armhf-install/initrd.gz',
            cmdline: 'console=ttyAMA0 root=/dev/vda1 rw',
            installCommand:
              'cp -a /boot/. /mnt/boot-share/ && ln -sf "vmlinuz-$(uname -r)" /mnt/boot-share/vmlinuz && ln -sf "initrd.img-$(uname -r)" /mnt/boot-share/initrd.img',
            upgradeCommand: 'DEBIAN_FRONTEND=noninteractive apt-get install -y linux-image-armmp',
            login: { user: 'root', passwordEnv: 'ARMHF_GUEST_PASSWORD' },
          },
        },
      },
    },
    {
      name: 'kunpeng920',
      role: 'arm64-kunpeng',
      description: 'Huawei TaiShan 2280 / Kunpeng 920, CentOS 7.6, libvirt 4.5, qemu 2.12 (seeds/001)',
      ssh: {
        address: '10.20.0.12',
        user: 'root',
        identityEnv: 'LAB_SSH_KEY',
        hostKey: 'SHA256:Qm1cT8yVx3yT1r6aB0nLwE5p4s7dK2jH9gF0uZ3xW6c',
      },
      // IPMI SOL through the BMC: ipmitool -E reads the password from IPMI_PASSWORD.
      console: {
        kind: 'command',
        on: 'runner',
        argv: ['ipmitool', '-I', 'lanplus', '-H', '10.20.1.12', '-U', 'labrig', '-E', 'sol', 'activate'],
      },
      power: { kind: 'ipmi', address: '10.20.1.12', user: 'labrig', passwordEnv: 'IPMI_PASSWORD' },
      // What the seed ran; a version-validation run changes these to the candidate versions,
      // and puts the candidate on the host first, e.g.
      //   components: { qemuDir: '/opt/qemu-9.2/bin', packages: [{ name: 'libvirt', version: '10.0.0-1.el8' }],
      //                 installCommand: 'dnf install -y {name}-{version}', versionCommand: "rpm -q --qf '%{VERSION}-%{RELEASE}' {name}" },
      expect: { arch: 'aarch64', features: ['libvirt', 'kvm', 'uefi', 'qemu'], cpuMhz: 2600, versions: { qemu: '2.12', libvirt: '4.5' } },
      accel: 'kvm',
      returnTimeoutMs: 600_000,
      suites: {
        hostFacts: { domcapsArch: 'aarch64' },
        // Seed 001: virt-2.12 with the edk2.git firmware; 15 root ports boot, of which xhci and the
        // virtio video take 2, leaving 13 for devices; nova's 28 is the upper bound.
        pcieRootPorts: {
          machineTypes: ['virt-2.12'],
          upper: 28,
          cpu: { mode: 'host-passthrough' },
          portDevices: ['xhci', 'video'],
          firmware: {
            loader: '/usr/share/edk2.git/aarch64/QEMU_EFI-pflash.raw',
            varsTemplate: '/usr/share/edk2.git/aarch64/vars-template-pflash.raw',
          },
          expectCeiling: { 'virt-2.12': 15 },
        },
      },
      // CentOS 7.6: a candidate version is installed with yum and read back with rpm.
      components: { installCommand: 'yum install -y {name}-{version}', versionCommand: "rpm -q --qf '%{VERSION}-%{RELEASE}' {name}" },
    },
    {
      name: 'x86-pmem',
      role: 'x86-pmem',
      description: 'x86 server booted with memmap=2G!4G, kexec-tools and ndctl (seeds/003)',
      ssh: {
        address: '10.20.0.13',
        user: 'root',
        identityEnv: 'LAB_SSH_KEY',
        hostKey: 'SHA256:zsfPC33hDzpbAHFiXsFUbdRbRQ3eko5VIkI76awyZoA',
      },
      // ser2net raw TCP port on the console server.
      console: { kind: 'tcp', address: '10.20.2.1', port: 3013 },
      power: {
        kind: 'redfish',
        url: 'https://10.20.1.13',
        systemId: '1',
        user: 'labrig',
        passwordEnv: 'REDFISH_PASSWORD',
        caFile: '/etc/labrig/bmc-ca.pem',
      },
      expect: { arch: 'x86_64', features: ['kvm', 'pmem', 'kexec', 'qemu'] },
      suites: {
        // Seed 003: memmap=2G!4G on the kernel command line, a QEMU built with libpmem, the VM saved
        // to pmem, the host kexec'd into the next kernel, the VM restored (devdax, then fsdax).
        snapshotKexec: { modes: ['devdax', 'fsdax'], namespace: 'namespace0.0', qemu: '/usr/local/bin/qemu-system-x86_64', machine: 'q35' },
      },
    },
    {
      name: 'xen-freebsd',
      role: 'x86-xen',
      description: 'x86 server booting Xen with a FreeBSD dom0 (seeds/002)',
      os: 'freebsd',
      ssh: {
        address: '10.20.0.14',
        user: 'root',
        identityEnv: 'LAB_SSH_KEY',
        hostKey: 'SHA256:RaSdT01PAZEhOxVhVp5KAcktRlS6yne+vhx1NQJZ1DU',
      },
      // ser2net in telnet mode on com1.
      console: { kind: 'tcp', address: '10.20.2.1', port: 3014, telnet: true },
      power: {
        kind: 'command',
        on: ['/usr/local/bin/pdu', 'on', '4'],
        off: ['/usr/local/bin/pdu', 'off', '4'],
        status: ['/usr/local/bin/pdu', 'status', '4'],
      },
      // FreeBSD's uname -m says amd64: the same architecture.
      expect: { arch: 'amd64', features: ['xen'] },
      returnTimeoutMs: 600_000,
      suites: {
        // /boot/loader.conf's xen_cmdline in seed 002; the domU's vif joins bridge0.
        xen: { dom0Mem: '8192M', dom0MaxVcpus: 4, console: 'com1,vga', com1: '115200,8n1', loglvl: 'all', guestLoglvl: 'all' },
      },
    },
    {
      name: 'xen-arch',
      role: 'x86-xen',
      description: 'x86 server booting Xen with an Arch Linux dom0 (seeds/004)',
      os: 'linux',
      ssh: {
        address: '10.20.0.15',
        user: 'root',
        identityEnv: 'LAB_SSH_KEY',
        hostKey: 'SHA256:c2VlZC1sYWItZXhhbXBsZS1maW5nZXJwcmludC0wMDA',
      },
      console: { kind: 'tcp', address: '10.20.2.1', port: 3015, telnet: true },
      power: {
        kind: 'command',
        on: ['/usr/local/bin/pdu', 'on', '5'],
        off: ['/usr/local/bin/pdu', 'off', '5'],
        status: ['/usr/local/bin/pdu', 'status', '5'],
      },
      expect: { arch: 'x86_64', features: ['xen'] },
      returnTimeoutMs: 600_000,
      suites: {
        // GRUB_CMDLINE_XEN_DEFAULT="dom0_mem=512M" (seed 004); the PV domU boots Arch's own kernel on xenbr0.
        xen: {
          dom0Mem: '512M',
          dom0MaxVcpus: 2,
          console: 'com1',
          com1: '115200,8n1',
          pvGuest: {
            kernel: '/boot/vmlinuz-linux',
            ramdisk: '/boot/initramfs-linux.img',
            extra: 'console=hvc0',
            memoryMiB: 512,
            bridge: 'xenbr0',
          },
        },
      },
    },
  ],
});
