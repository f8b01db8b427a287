/**
 * `labrig images build [name…]` and `labrig images list`: the images of images/ in the cache
 * (`${LABRIG_CACHE:-~/.cache/labrig}`), built from Debian packages on any Debian runner. No names:
 * what the lab config needs (the default lab, the emulated one, needs every image).
 */
import type { Command } from 'commander';
import { LabError } from '../drivers/errors.js';
import { type BuiltImage, cachedImagesOf, cacheRoot } from '../images/cache.js';
import type { ImageRecipe } from '../images/catalog.js';
import { stderrProgress } from '../images/debs.js';
import { loadLab } from '../targets/config.js';
import { findTool } from '../targets/preflight.js';
import { commandAction } from './host-args.js';
import { imagesNamed, imagesNeeded, knownImages } from './image-catalog.js';

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** The default config is the emulated lab, which cannot be loaded while it is down: it needs every image anyway. */
async function imagesOfTheLab(): Promise<ImageRecipe[]> {
  if (!process.env.LABRIG_CONFIG && !process.env.LABRIG_LAB_FILE) {
    stderrProgress('the default lab (the emulated one) needs every image');
    return [...knownImages];
  }
  const lab = await loadLab();
  const needed = imagesNeeded(lab);
  stderrProgress(
    needed.length
      ? `lab ${lab.name} needs ${needed.map((r) => r.name).join(', ')}`
      : `lab ${lab.name} needs no image that labrig builds (its guests are its own, named by path)`,
  );
  return needed;
}

interface BuildRecord {
  name: string;
  dir: string;
  cached: boolean;
  seconds: number;
  /** Absolute paths of the image's files, by their key in the manifest. */
  files: Record<string, string>;
}

const recordOf = (image: BuiltImage, seconds: number): BuildRecord => ({
  name: image.manifest.name,
  dir: image.dir,
  cached: image.cached,
  seconds,
  files: Object.fromEntries(Object.keys(image.manifest.files).map((k) => [k, image.file(k)])),
});

/** What the recipes run on the runner, and the Debian package that has it. */
const BUILD_TOOLS = {
  'apt-get': 'apt',
  'apt-cache': 'apt',
  dpkg: 'dpkg',
  mke2fs: 'e2fsprogs',
  xz: 'xz-utils',
  'ssh-keygen': 'openssh-client',
};

async function checkBuildTools(): Promise<void> {
  const missing: string[] = [];
  for (const [tool, pkg] of Object.entries(BUILD_TOOLS)) if (!(await findTool(tool))) missing.push(`${tool} (${pkg})`);
  if (missing.length)
    throw new LabError(
      'lab-setup',
      `images are built with Debian's tools; this runner lacks ${missing.join(', ')}: apt-get install ${[...new Set(missing.map((m) => m.replace(/.*\((.*)\)/, '$1')))].join(' ')}`,
    );
}

async function build(names: string[], opts: { json?: boolean }): Promise<number> {
  const recipes = names.length ? imagesNamed(names) : await imagesOfTheLab();
  await checkBuildTools();
  const records: BuildRecord[] = [];
  // one at a time: each build takes a core or two, and the machine is shared
  for (const r of recipes) {
    const t0 = performance.now();
    const image = await r.build(stderrProgress);
    const record = recordOf(image, (performance.now() - t0) / 1000);
    records.push(record);
    if (opts.json) continue;
    const how = record.cached ? `cached, ${record.seconds.toFixed(1)} s` : `built in ${record.seconds.toFixed(1)} s`;
    process.stdout.write(`${record.name} ${record.dir} (${how})\n`);
    for (const [k, path] of Object.entries(record.files)) process.stdout.write(`  ${k}: ${path}\n`);
  }
  if (opts.json) process.stdout.write(`${JSON.stringify(records, null, 2)}\n`);
  return 0;
}

async function list(opts: { json?: boolean }): Promise<number> {
  const rows: Array<{ name: string; state: 'cached' | 'not built'; sizeBytes?: number; builtAt?: string; dir?: string; what: string }> = [];
  for (const r of knownImages) {
    const found = await cachedImagesOf(r.name);
    if (!found.length) rows.push({ name: r.name, state: 'not built', what: r.what });
    for (const f of found)
      rows.push({ name: r.name, state: 'cached', sizeBytes: f.sizeBytes, builtAt: f.builtAt, dir: f.dir, what: r.what });
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return 0;
  }
  // several builds of one image: other package versions or recipes (a checkout of another revision); `build` picks its own
  process.stdout.write(`images in ${cacheRoot()}/images, newest first\n`);
  const width = Math.max(...rows.map((r) => r.name.length));
  for (const r of rows) {
    const size = (r.sizeBytes === undefined ? '-' : mb(r.sizeBytes)).padStart(9);
    const built = r.builtAt ? r.builtAt.slice(0, 16).replace('T', ' ') : '-'.padEnd(16);
    process.stdout.write(`${r.name.padEnd(width)}  ${r.state.padEnd(9)}  ${size}  ${built}  ${r.dir ?? r.what}\n`);
  }
  return 0;
}

export function registerImagesCommands(program: Command, setCode: (code: number) => void): void {
  const images = program
    .command('images')
    .description('guest and host images built from Debian packages, cached under ${LABRIG_CACHE:-~/.cache/labrig}');
  images
    .command('build')
    .description('build (or find cached) the named images, or those the lab config needs; prints where each is')
    .argument('[names...]', `images: ${knownImages.map((r) => r.name).join(', ')}`)
    .option('--json', 'one {name, dir, cached, seconds, files} per image, as JSON')
    .action(async (names: string[], opts: { json?: boolean }) => {
      setCode(await commandAction('images build', () => build(names, opts)));
    });
  images
    .command('list')
    .description('every image labrig knows: cached (each build, newest first) or not, size on disk, when built, path')
    .option('--json', 'one {name, state, sizeBytes, builtAt, dir, what} per row, as JSON')
    .action(async (opts: { json?: boolean }) => {
      setCode(await commandAction('images list', () => list(opts)));
    });
}
