/**
 * The nested guest's kernel for emu-x86-pmem, fast to boot under TCG-in-TCG and safe to
 * restore. Debian's bzImage spends over a minute decompressing itself inside the nested
 * guest; its vmlinux booted through QEMU's PVH entry starts in seconds — but QEMU loads an
 * ELF kernel as "ROM" blobs in guest RAM and writes them again on every reset, including the
 * one `loadvm` performs: the restored kernel's live .text/.data would be overwritten with
 * the pristine image (the guest resets at once). So the vmlinux is wrapped:
 *   - one PT_LOAD at `staging` holds a 25-byte loader and, after it, the kernel's physical
 *     image flattened (every PT_LOAD at its p_paddr, gaps and .bss zero-filled);
 *   - the PVH note points at the loader, which copies the image to its real place and jumps
 *     to the kernel's own PVH entry (ebx, the start_info pointer, untouched);
 *   - the guest command line reserves the staging range (`memmap=<size>$<staging>`), so the
 *     running kernel never writes it and QEMU's rewrite there is harmless.
 * Pure: a Buffer in, a Buffer out.
 */
import { LabError } from '../drivers/errors.js';

const PT_LOAD = 1;
const PT_NOTE = 4;
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

interface Segment {
  offset: number;
  paddr: number;
  filesz: number;
  memsz: number;
}

export interface KernelImage {
  segments: Segment[];
  /** The kernel's own PVH entry (physical, 32-bit protected mode). */
  pvhEntry: number;
}

/** PT_LOAD segments and the Xen PHYS32_ENTRY note of an ELF64 x86-64 vmlinux. */
export function readVmlinux(elf: Buffer): KernelImage {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1 || elf.readUInt16LE(18) !== 62)
    throw new LabError('lab-setup', 'not a little-endian ELF64 x86-64 vmlinux');
  const phoff = Number(elf.readBigUInt64LE(32));
  const phentsize = elf.readUInt16LE(54);
  const phnum = elf.readUInt16LE(56);
  const segments: Segment[] = [];
  let pvhEntry: number | undefined;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    const type = elf.readUInt32LE(ph);
    const offset = Number(elf.readBigUInt64LE(ph + 8));
    const paddr = Number(elf.readBigUInt64LE(ph + 24));
    const filesz = Number(elf.readBigUInt64LE(ph + 32));
    const memsz = Number(elf.readBigUInt64LE(ph + 40));
    const align = Number(elf.readBigUInt64LE(ph + 48)) || 1;
    if (type === PT_LOAD) segments.push({ offset, paddr, filesz, memsz });
    if (type === PT_NOTE) {
      for (let at = offset; at + 12 <= offset + filesz; ) {
        const namesz = elf.readUInt32LE(at);
        const descsz = elf.readUInt32LE(at + 4);
        const ntype = elf.readUInt32LE(at + 8);
        const name = elf.subarray(at + 12, at + 12 + namesz).toString('latin1');
        const desc = at + 12 + alignUp(namesz, align);
        if (name === 'Xen\0' && ntype === XEN_ELFNOTE_PHYS32_ENTRY)
          pvhEntry = descsz >= 8 ? Number(elf.readBigUInt64LE(desc)) : elf.readUInt32LE(desc);
        at = desc + alignUp(descsz, align);
      }
    }
  }
  if (!segments.length) throw new LabError('lab-setup', 'vmlinux has no PT_LOAD segment');
  if (pvhEntry === undefined)
    throw new LabError('lab-setup', 'vmlinux has no Xen PHYS32_ENTRY note: the kernel was built without CONFIG_PVH');
  return { segments, pvhEntry };
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * The loader, 32-bit code run at the PVH entry (protected mode, paging off, flat segments):
 *   mov esi, src ; mov edi, dst ; mov ecx, dwords ; cld ; rep movsd ; mov eax, entry ; jmp eax
 */
export function loaderCode(src: number, dst: number, bytes: number, entry: number): Buffer {
  if (bytes % 4) throw new LabError('lab-setup', 'the loader copies whole dwords');
  const imm = (op: number, v: number) => {
    const b = Buffer.alloc(5);
    b[0] = op;
    b.writeUInt32LE(v >>> 0, 1);
    return b;
  };
  return Buffer.concat([
    imm(0xbe, src),
    imm(0xbf, dst),
    imm(0xb9, bytes / 4),
    Buffer.from([0xfc, 0xf3, 0xa5]),
    imm(0xb8, entry),
    Buffer.from([0xff, 0xe0]),
  ]);
}

export interface StagedKernel {
  elf: Buffer;
  /** Bytes from `staging` that the guest must leave alone (loader page + image). */
  reservedBytes: number;
}

/** The wrapped kernel; `staging` must lie above the kernel's image and inside guest RAM. */
export function stagedPvhKernel(vmlinux: Buffer, staging: number): StagedKernel {
  const k = readVmlinux(vmlinux);
  const low = Math.min(...k.segments.map((s) => s.paddr));
  const high = alignUp(Math.max(...k.segments.map((s) => s.paddr + s.memsz)), 4);
  if (staging < high)
    throw new LabError('lab-setup', `staging 0x${staging.toString(16)} overlaps the kernel image (ends 0x${high.toString(16)})`);
  const image = Buffer.alloc(high - low);
  for (const s of k.segments) vmlinux.copy(image, s.paddr - low, s.offset, s.offset + s.filesz);
  const PAGE = 0x1000;
  const loader = loaderCode(staging + PAGE, low, image.length, k.pvhEntry);
  const payload = Buffer.concat([loader, Buffer.alloc(PAGE - loader.length), image]);

  const note = Buffer.alloc(24);
  note.writeUInt32LE(4, 0);
  note.writeUInt32LE(8, 4);
  note.writeUInt32LE(XEN_ELFNOTE_PHYS32_ENTRY, 8);
  note.write('Xen\0', 12, 'latin1');
  note.writeBigUInt64LE(BigInt(staging), 16);

  const ehdr = Buffer.alloc(64);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(ehdr);
  ehdr.writeUInt16LE(2, 16); // ET_EXEC
  ehdr.writeUInt16LE(62, 18); // EM_X86_64
  ehdr.writeUInt32LE(1, 20);
  ehdr.writeBigUInt64LE(BigInt(staging), 24);
  ehdr.writeBigUInt64LE(64n, 32); // program headers right after
  ehdr.writeUInt16LE(64, 52);
  ehdr.writeUInt16LE(56, 54);
  ehdr.writeUInt16LE(2, 56);
  const noteOffset = 64 + 2 * 56;
  const loadOffset = PAGE;
  const phdr = (type: number, flags: number, offset: number, addr: number, size: number, align: number) => {
    const b = Buffer.alloc(56);
    b.writeUInt32LE(type, 0);
    b.writeUInt32LE(flags, 4);
    b.writeBigUInt64LE(BigInt(offset), 8);
    b.writeBigUInt64LE(BigInt(addr), 16);
    b.writeBigUInt64LE(BigInt(addr), 24);
    b.writeBigUInt64LE(BigInt(size), 32);
    b.writeBigUInt64LE(BigInt(size), 40);
    b.writeBigUInt64LE(BigInt(align), 48);
    return b;
  };
  const head = Buffer.concat([
    ehdr,
    phdr(PT_LOAD, 7, loadOffset, staging, payload.length, PAGE),
    phdr(PT_NOTE, 4, noteOffset, 0, note.length, 4),
    note,
  ]);
  const elf = Buffer.concat([head, Buffer.alloc(loadOffset - head.length), payload]);
  return { elf, reservedBytes: payload.length };
}
