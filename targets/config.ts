/** Loads and checks the lab: lab.config.ts by default, LABRIG_CONFIG to choose another file. */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { labSchema, type Lab, type LabInput } from './schema.js';
import { LabError } from '../drivers/errors.js';

/** Identity function that gives a config file its types. */
export function defineLab(lab: LabInput): LabInput {
  return lab;
}

export function parseLab(input: unknown, source = 'lab config'): Lab {
  const result = labSchema.safeParse(input);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const path = issue.path.length ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(root)';
    return `  ${path}: ${issue.message}`;
  });
  throw new LabError('config', `${source} is not valid:\n${lines.join('\n')}`);
}

export function configPath(): string {
  return resolve(process.env.LABRIG_CONFIG ?? 'lab.config.ts');
}

export async function loadLab(path = configPath()): Promise<Lab> {
  let mod: { lab?: unknown };
  try {
    mod = await import(pathToFileURL(path).href);
  } catch (e) {
    throw new LabError('config', `cannot load ${path}: ${(e as Error).message}`, {}, { cause: e });
  }
  const exported = typeof mod.lab === 'function' ? await (mod.lab as () => unknown)() : mod.lab;
  if (exported === undefined) throw new LabError('config', `${path} must export \`lab\` (an object, or a function returning one)`);
  return parseLab(exported, path);
}
