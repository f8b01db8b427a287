/** `labrig components fetch qemu=<v> [libvirt=<v>] [--from suite] [--into dir]`: a candidate build from Debian packages. */
import type { Command } from 'commander';
import { buildBinDir, reachableByOthers } from '../targets/components-build.js';
import { fetchComponents, parseComponentVersions } from '../targets/components-fetch.js';
import { commandAction } from './host-args.js';

export function registerComponentsCommands(program: Command, setCode: (code: number) => void): void {
  const components = program.command('components').description('candidate QEMU/libvirt builds for version validation');
  components
    .command('fetch')
    .description('download a QEMU/libvirt version from a Debian suite and unpack it into a build directory (nothing is installed)')
    .argument('<versions...>', 'qemu=<version> and/or libvirt=<version> (a Debian version, or its upstream part: 10.0.2)')
    .option('--from <suite>', 'the Debian suite to take them from', 'bookworm-backports')
    .option('--into <dir>', 'where builds live (default ${LABRIG_CACHE:-~/.cache/labrig}/components)')
    .option('--json', 'the build record as JSON')
    .action(async (words: string[], opts: { from: string; into?: string; json?: boolean }) => {
      setCode(
        await commandAction('components fetch', async () => {
          const t0 = performance.now();
          const { build, cached } = await fetchComponents({
            versions: parseComponentVersions(words),
            from: opts.from,
            ...(opts.into ? { into: opts.into } : {}),
            say: (l) => process.stderr.write(`labrig: ${l}\n`),
          });
          if (opts.json) {
            process.stdout.write(`${JSON.stringify({ ...build, cached }, null, 2)}\n`);
            return 0;
          }
          const s = ((performance.now() - t0) / 1000).toFixed(1);
          process.stdout.write(`${build.dir} (${cached ? `cached, ${s} s` : `fetched in ${s} s`})\n`);
          for (const [c, v] of Object.entries(build.components)) process.stdout.write(`  ${c} ${v.version}\n`);
          process.stdout.write(`  components.qemuDir / components.libvirtDir: ${buildBinDir(build.dir)}\n`);
          const closed = await reachableByOthers(build.dir);
          if (closed)
            process.stdout.write(
              `  note: ${closed} is not o+x: a libvirt that runs QEMU as another user (libvirt-qemu) cannot reach this build; --into a prefix such as /opt/labrig\n`,
            );
          return 0;
        }),
      );
    });
}
