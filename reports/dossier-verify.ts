/**
 * `labrig dossier --verify <archive>`: every file the dossier's manifest.json lists is in the
 * archive with the SHA-256 recorded, and nothing else is. It proves the archive is whole and
 * unchanged since it was made — not who made it: whoever changes a file can rewrite the
 * manifest too, so the manifest's own SHA-256 (printed when the dossier is made) is what to
 * send the vendor by another channel.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { readTarGz, type TarEntry } from './tar.js';

export const DOSSIER_MANIFEST = 'manifest.json';

export const dossierManifestSchema = z.object({
  dossier: z.literal(1),
  runId: z.string().nullable(),
  gitRevision: z.string().nullable(),
  createdAt: z.string(),
  versions: z.record(z.string(), z.record(z.string(), z.string().nullable())),
  /** Path inside the archive → its SHA-256 and size. Every file but this manifest. */
  files: z.record(z.string(), z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: z.number().int().min(0) })),
});
export type DossierManifest = z.infer<typeof dossierManifestSchema>;

export type DossierProblemKind = 'differs' | 'missing' | 'extra' | 'duplicate' | 'not a regular file';

export interface DossierProblem {
  file: string;
  problem: DossierProblemKind;
  detail?: string;
}

export interface DossierVerification {
  ok: boolean;
  manifestSha256: string;
  runId: string | null;
  checked: number;
  problems: DossierProblem[];
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Pure: the entries of an archive against the manifest among them. */
export function verifyEntries(entries: TarEntry[]): DossierVerification {
  const manifestEntries = entries.filter((e) => e.name === DOSSIER_MANIFEST);
  if (manifestEntries.length !== 1) {
    throw new Error(manifestEntries.length ? `the archive holds ${DOSSIER_MANIFEST} more than once` : `the archive has no ${DOSSIER_MANIFEST} at its root`);
  }
  const manifestData = manifestEntries[0]!.data;
  let parsed: DossierManifest;
  try {
    parsed = dossierManifestSchema.parse(JSON.parse(manifestData.toString('utf8')));
  } catch (e) {
    throw new Error(`${DOSSIER_MANIFEST} in the archive is not a dossier manifest: ${(e as Error).message}`, { cause: e });
  }
  const problems: DossierProblem[] = [];
  const seen = new Map<string, TarEntry>();
  for (const e of entries) {
    if (e.name === DOSSIER_MANIFEST || e.kind === 'directory') continue;
    if (e.kind !== 'file') {
      problems.push({ file: e.name, problem: 'not a regular file', detail: `tar type '${e.typeflag}'` });
      continue;
    }
    if (seen.has(e.name)) problems.push({ file: e.name, problem: 'duplicate', detail: 'the archive holds this path more than once' });
    seen.set(e.name, e);
  }
  let checked = 0;
  for (const [file, expected] of Object.entries(parsed.files).sort(([a], [b]) => a.localeCompare(b))) {
    const entry = seen.get(file);
    if (!entry) {
      problems.push({ file, problem: 'missing' });
      continue;
    }
    checked++;
    const actual = sha256(entry.data);
    if (actual !== expected.sha256) problems.push({ file, problem: 'differs', detail: `sha256 ${actual}, manifest says ${expected.sha256}` });
  }
  for (const file of [...seen.keys()].sort()) if (!(file in parsed.files)) problems.push({ file, problem: 'extra', detail: 'not listed in the manifest' });
  return { ok: problems.length === 0, manifestSha256: sha256(manifestData), runId: parsed.runId, checked, problems };
}

export async function verifyDossier(archive: string): Promise<DossierVerification> {
  return verifyEntries(await readTarGz(archive));
}
