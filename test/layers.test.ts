/**
 * The layers, checked by dependency-cruiser (.dependency-cruiser.cjs, `npm run layers`): the
 * tree as it is passes, and a tree that breaks each rule — a suite or an image recipe importing
 * the emulated lab, a driver importing targets or suites, an import cycle that runs — fails,
 * naming the rule and the files.
 */

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';

const root = resolve(import.meta.dirname, '..');
const depcruise = join(root, 'node_modules', '.bin', 'depcruise');

test('the tree keeps its layers (npm run layers)', async () => {
  test.setTimeout(180_000);
  const r = await execa('npm', ['run', '--silent', 'layers'], { cwd: root, reject: false, all: true });
  expect(r.exitCode, r.all).toBe(0);
  expect(r.all).toContain('no dependency violations found');
});

test('each layer rule fails a tree that breaks it, naming the rule and both files', async () => {
  test.setTimeout(180_000);
  const dir = await mkdtemp(join(tmpdir(), 'labrig-layers-'));
  try {
    const files: Record<string, string> = {
      'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true } }),
      'targets/emulated/lab.ts': 'export const lab = 1;\n',
      'targets/schema.ts': 'export type HostConfig = { name: string };\n',
      'suites/a.spec.ts': "import { lab } from '../targets/emulated/lab.js';\nexport const a = lab;\n",
      'images/recipe.ts': "import { lab } from '../targets/emulated/lab.js';\nexport const r = lab;\n",
      'images/contract.ts': "import { a } from '../suites/a.spec.js';\nexport const c = a;\n",
      'drivers/ssh.ts':
        "import type { HostConfig } from '../targets/schema.js';\nimport { a } from '../suites/a.spec.js';\nexport const s = (h: HostConfig) => h.name + a;\n",
      'drivers/x.ts': "import { y } from './y.js';\nexport const x = () => y;\n",
      'drivers/y.ts': "import { x } from './x.js';\nexport const y = () => x;\n",
      'drivers/t1.ts': "import type { T2 } from './t2.js';\nexport type T1 = { t2?: T2 };\n",
      'drivers/t2.ts': "import type { T1 } from './t1.js';\nexport type T2 = { t1?: T1 };\n",
    };
    for (const [path, text] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), text);
    }
    const r = await execa(
      depcruise,
      ['--config', join(root, '.dependency-cruiser.cjs'), '--output-type', 'err', 'drivers', 'images', 'suites', 'targets'],
      {
        cwd: dir,
        reject: false,
        all: true,
      },
    );
    const out = stripVTControlCharacters(r.all);
    expect(r.exitCode, out).not.toBe(0);
    for (const line of [
      'suites-not-emulated-lab: suites/a.spec.ts → targets/emulated/lab.ts',
      'images-not-emulated-lab: images/recipe.ts → targets/emulated/lab.ts',
      'images-not-suites: images/contract.ts → suites/a.spec.ts',
      'drivers-not-targets: drivers/ssh.ts → targets/schema.ts',
      'drivers-not-suites: drivers/ssh.ts → suites/a.spec.ts',
      'no-circular: drivers/x.ts',
    ])
      expect(out).toContain(line);
    // A cycle of type-only imports is not a cycle at run time.
    expect(out).not.toContain('no-circular: drivers/t1.ts');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
