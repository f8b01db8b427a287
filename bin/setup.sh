#!/usr/bin/env bash
# Installs what labrig needs on a Debian 12 runner (root, Node 20): Debian packages and npm
# dependencies. Idempotent: installs only what is missing, and says what it does.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(
  openssh-server openssh-client socat git ca-certificates
  qemu-system-x86 qemu-system-arm qemu-utils qemu-efi-aarch64 ovmf
  libvirt-daemon-system libvirt-clients
  busybox-static cpio xz-utils zstd dropbear-bin dmidecode kmod procps iproute2 util-linux file e2fsprogs binutils attr
  openipmi ipmitool ser2net
  mmdebstrap qemu-user-static binfmt-support
)

say() { printf 'labrig setup: %s\n' "$*" >&2; }

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then say "Node 20 or newer is required (found: $(node --version 2>/dev/null || echo none))"; exit 1; fi

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then say "missing Debian packages (${missing[*]}) and not root: install them first"; exit 1; fi
  say "installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
else
  say "Debian packages: all ${#DEBS[@]} present"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
else
  say "npm dependencies: present"
fi
