/**
 * What the suite asks of each QEMU (the one that saves, the one that restores after the
 * kexec, maybe a newer build): its version, the machine types it builds, and whether it takes
 * `pmem=on` — checked by starting it, not assumed. QEMU built without libpmem refuses pmem=on
 * with "Lack of libpmem support while setting the 'pmem=on' of memory-backend-file" (seed
 * 003: "lack of libpmem support"); the suite used to drop pmem=on then, now the run fails.
 */
import { LabError, ProductError } from '../../drivers/errors.js';
import { shellQuote } from '../../drivers/ssh.js';
import type { Host } from '../../targets/host.js';

export type PmemProbe = { ok: true } | { ok: false; libpmemMissing: boolean; reason: string };

export interface QemuFacts {
  /** The binary as run on the host. */
  binary: string;
  /** `qemu-system-x86_64 --version`, first line. */
  version: string;
  /** Machine types and the versioned type each alias stands for (q35 → pc-q35-7.2). */
  machines: Map<string, string | undefined>;
  pmem: PmemProbe;
}

/** `-machine help`: `q35   Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)` → q35 → pc-q35-7.2. */
export function parseMachineHelp(text: string): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+.*?(?:\(alias of (\S+)\))?\s*$/.exec(line);
    if (m && !line.startsWith('Supported machines')) out.set(m[1]!, m[2]);
  }
  return out;
}

/** The versioned type `wanted` means on this QEMU: an alias resolved, a versioned type kept. */
export function pinMachine(machines: Map<string, string | undefined>, wanted: string, qemu: string): string {
  if (!machines.has(wanted))
    throw new LabError(
      'config',
      `suites.snapshotKexec.machine "${wanted}" is not a machine type of ${qemu} (it has ${[...machines.keys()]
        .filter((m) => /q35|pc/.test(m))
        .slice(0, 8)
        .join(', ')}…)`,
    );
  return machines.get(wanted) ?? wanted;
}

/** The probe's exit code and output → pmem=on taken, refused for want of libpmem, or failed otherwise. */
export function classifyPmemProbe(code: number, output: string): PmemProbe {
  if (code === 0) return { ok: true };
  const reason =
    output
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('{'))
      .join(' ')
      .trim() || `exit ${code}`;
  // Older QEMU refuses with "Lack of libpmem support"; a build that drops the property when
  // CONFIG_LIBPMEM is off says "Property 'memory-backend-file.pmem' not found".
  return { ok: false, libpmemMissing: /libpmem|memory-backend-file\.pmem' not found/i.test(output), reason };
}

/**
 * The error for a pmem=on the lab asked of a QEMU that refuses it. A QEMU the run validates
 * (a components.qemuDir build, or the upgraded QEMU that restores) lacking libpmem is a
 * product finding; the host's own QEMU is how the lab was set up: a config error.
 */
export function pmemOnRefused(o: { host: string; role: 'saving' | 'restoring'; qemu: QemuFacts; underValidation: boolean }): Error {
  if (o.qemu.pmem.ok) throw new Error('pmemOnRefused called for a QEMU that takes pmem=on');
  const field = o.role === 'saving' ? 'suites.snapshotKexec.qemu' : 'suites.snapshotKexec.restoreQemu';
  const probe = o.qemu.pmem.reason;
  const what = `the ${o.role} QEMU ${o.qemu.binary} (${o.qemu.version}) refuses pmem=on`;
  if (!o.qemu.pmem.libpmemMissing)
    return new ProductError('command-failed', `${what}: a memory-backend-file with pmem=on did not start: ${probe}`, { host: o.host });
  if (o.underValidation)
    return new ProductError('mismatch', `${what}: the QEMU under validation was built without libpmem (${probe})`, { host: o.host });
  return new LabError(
    'config',
    `suites.snapshotKexec.pmemOn is true but ${what}: it was built without libpmem (${probe}); point ${field} at a QEMU built with --enable-libpmem, or set pmemOn: false`,
    { host: o.host },
  );
}

/** Version, machine types and a real start with pmem=on on a scratch file (`-machine none`). */
export async function probeQemu(host: Host, binary: string, workDir: string): Promise<QemuFacts> {
  const run = (cmd: string) => host.run(cmd, { timeoutMs: 120_000 });
  const q = shellQuote(binary);
  const v = await run(`${q} --version`);
  if (v.code !== 0)
    throw new LabError('config', `${binary} does not run on the host (exit ${v.code}): ${(v.stderr || v.stdout).trim().split('\n')[0]}`, {
      host: host.name,
    });
  const machines = parseMachineHelp((await run(`${q} -machine help`)).stdout);
  const probe = `${workDir}/pmem-probe.img`;
  const backend = `memory-backend-file,id=probe,size=2M,mem-path=${probe},share=on,pmem=on`;
  const p = await run(
    `mkdir -p ${shellQuote(workDir)} && printf '%s\\n' '{"execute":"qmp_capabilities"}' '{"execute":"quit"}' | ` +
      `${q} -machine none -nodefaults -display none -object ${shellQuote(backend)} -qmp stdio 2>&1; ` +
      `rc=$?; rm -f ${shellQuote(probe)}; exit $rc`,
  );
  return { binary, version: v.stdout.split('\n')[0]!.trim(), machines, pmem: classifyPmemProbe(p.code ?? -1, p.stdout) };
}

/** `restoreQemu` names a directory: the binary in it named like the saving QEMU. */
export async function resolveQemuPath(host: Host, wanted: string, savingQemu: string): Promise<string> {
  if (!wanted.includes('/')) return wanted;
  const isDir = (await host.run(`test -d ${shellQuote(wanted)}`)).code === 0;
  return isDir ? `${wanted.replace(/\/$/, '')}/${savingQemu.split('/').at(-1)}` : wanted;
}
