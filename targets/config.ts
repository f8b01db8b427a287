/**
 * Loads and checks the lab: lab.config.ts by default, LABRIG_CONFIG to choose another file (from
 * any folder; a .json lab too). Inside a run, the lab resolved once by `labrig run` (LABRIG_LAB_FILE) is used.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { tsImport } from 'tsx/esm/api';
import { LabError } from '../drivers/errors.js';
import { repoRoot } from './run-context.js';
import { type Lab, type LabInput, labSchema } from './schema.js';

/** Identity function that gives a config file its types. */
export function defineLab(lab: LabInput): LabInput {
  return lab;
}

export function parseLab(input: unknown, source = 'lab config'): Lab {
  const result = labSchema.safeParse(input);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const path = issue.path.length
      ? issue.path
          .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
          .join('')
          .replace(/^\./, '')
      : '(root)';
    return `  ${path}: ${issue.message}`;
  });
  throw new LabError('config', `${source} is not valid:\n${lines.join('\n')}`);
}

export function configPath(): string {
  return resolve(process.env.LABRIG_CONFIG ?? resolve(repoRoot, 'lab.config.ts'));
}

/** The folder a config's relative paths (outDir) are taken from. */
export const configDir = () => dirname(configPath());

async function importLab(path: string): Promise<Lab> {
  if (path.endsWith('.json')) return parseLab(await readJson(path, 'cannot read the lab'), path);
  let mod: { lab?: unknown };
  try {
    // tsx's own loader: a config kept in the lab's repository (no package.json saying "module")
    // loads as ESM TypeScript too, where a plain import() would take it for CommonJS.
    mod = (await tsImport(path, import.meta.url)) as { lab?: unknown };
  } catch (e) {
    throw new LabError('config', `cannot load ${path}: ${(e as Error).message}`, {}, { cause: e });
  }
  const exported = typeof mod.lab === 'function' ? await (mod.lab as () => unknown)() : mod.lab;
  if (exported === undefined) throw new LabError('config', `${path} must export \`lab\` (an object, or a function returning one)`);
  return parseLab(exported, path);
}

async function readJson(file: string, what: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new LabError('config', `${what} ${file}: ${(e as Error).message}`, {}, { cause: e });
  }
}

/** A lab config: a .ts/.mjs module exporting `lab`, or a .json file (a resolved or localized lab). */
export async function loadLab(path?: string): Promise<Lab> {
  const resolved = process.env.LABRIG_LAB_FILE;
  if (!path && resolved) return parseLab(await readJson(resolved, "cannot read the run's resolved lab"), resolved);
  return importLab(path ? resolve(path) : configPath());
}

/** Writes the lab as resolved for a run, for the run's other processes (secrets are only env-var names in it). */
export async function writeResolvedLab(lab: Lab, file: string): Promise<void> {
  await writeFile(file, `${JSON.stringify(lab, null, 2)}\n`);
}
