/**
 * `labrig dossier --verify <archive>`: every file the dossier's manifest.json lists is in the
 * archive with the SHA-256 recorded, and nothing else is. It proves the archive is whole and
 * unchanged since it was made — not who made it: whoever changes a file can rewrite the
 * manifest too, so the manifest's own SHA-256 (printed when the dossier is made) is what to
 * send the vendor by another channel.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { DEFAULT_TAR_LIMITS, forEachTarGzMember, type TarLimits, type TarMember } from './tar.js';

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

export type DossierProblemKind = 'differs' | 'missing' | 'extra' | 'duplicate' | 'not a regular file' | 'unsafe path';

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

/** A member as the verifier saw it: its header and the digest of its bytes. */
export interface MemberDigest extends TarMember {
  sha256: string;
  bytes: number;
}

/** Why a member's path could land outside the folder it is unpacked in, if it could. */
export function unsafePath(name: string): string | undefined {
  if (name === '') return 'an empty path';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'an absolute path';
  if (name.split(/[\\/]/).includes('..')) return 'a path with ".."';
  return undefined;
}

const MAX_MANIFEST_BYTES = 16 * 2 ** 20;

/** Pure: the members of an archive against the manifest among them (its bytes, when there was exactly one). */
export function verifyMembers(members: readonly MemberDigest[], manifestData: Buffer | undefined): DossierVerification {
  const manifests = members.filter((m) => m.name === DOSSIER_MANIFEST);
  if (manifests.length !== 1 || !manifestData) {
    throw new Error(
      manifests.length > 1 ? `the archive holds ${DOSSIER_MANIFEST} more than once` : `the archive has no ${DOSSIER_MANIFEST} at its root`,
    );
  }
  let parsed: DossierManifest;
  try {
    parsed = dossierManifestSchema.parse(JSON.parse(manifestData.toString('utf8')));
  } catch (e) {
    throw new Error(`${DOSSIER_MANIFEST} in the archive is not a dossier manifest: ${(e as Error).message}`, { cause: e });
  }
  const problems: DossierProblem[] = [];
  const seen = new Map<string, MemberDigest>();
  for (const m of members) {
    // `tar -C dir .` writes the folder itself as `./`
    if (m.type === 'directory' && /^\.?\/*$/.test(m.name)) continue;
    const unsafe = unsafePath(m.name);
    if (unsafe) {
      problems.push({ file: m.name, problem: 'unsafe path', detail: `${unsafe}; never unpack this archive` });
      continue;
    }
    if (m.name === DOSSIER_MANIFEST || m.type === 'directory') continue;
    if (m.type !== 'file' && m.type !== 'contiguous-file') {
      problems.push({ file: m.name, problem: 'not a regular file', detail: `a ${m.type}${m.linkname ? ` to ${m.linkname}` : ''}` });
      continue;
    }
    if (seen.has(m.name)) problems.push({ file: m.name, problem: 'duplicate', detail: 'the archive holds this path more than once' });
    seen.set(m.name, m);
  }
  let checked = 0;
  for (const [file, expected] of Object.entries(parsed.files).sort(([a], [b]) => a.localeCompare(b))) {
    const member = seen.get(file);
    if (!member) {
      problems.push({ file, problem: 'missing' });
      continue;
    }
    checked++;
    if (member.sha256 !== expected.sha256)
      problems.push({ file, problem: 'differs', detail: `sha256 ${member.sha256}, manifest says ${expected.sha256}` });
    else if (member.bytes !== expected.bytes)
      problems.push({ file, problem: 'differs', detail: `${member.bytes} bytes, manifest says ${expected.bytes}` });
  }
  for (const file of [...seen.keys()].sort())
    if (!(file in parsed.files)) problems.push({ file, problem: 'extra', detail: 'not listed in the manifest' });
  return { ok: problems.length === 0, manifestSha256: sha256(manifestData), runId: parsed.runId, checked, problems };
}

/** Streams the archive once: every member hashed as it passes, only manifest.json kept (up to 16 MiB). */
export async function verifyDossier(archive: string, limits: TarLimits = DEFAULT_TAR_LIMITS): Promise<DossierVerification> {
  const members: MemberDigest[] = [];
  let manifestData: Buffer | undefined;
  await forEachTarGzMember(
    archive,
    async (member, body) => {
      const hash = createHash('sha256');
      const keep: Buffer[] = [];
      let bytes = 0;
      const isManifest = member.name === DOSSIER_MANIFEST && member.type === 'file';
      // Links, devices and unsafe paths are judged by their header; their bytes are not read.
      if (member.type === 'file' || member.type === 'contiguous-file') {
        for await (const chunk of body) {
          hash.update(chunk);
          bytes += chunk.length;
          if (isManifest && bytes <= MAX_MANIFEST_BYTES) keep.push(chunk);
        }
      }
      if (isManifest) {
        if (bytes > MAX_MANIFEST_BYTES) throw new Error(`${DOSSIER_MANIFEST} in the archive is larger than ${MAX_MANIFEST_BYTES} bytes`);
        manifestData = manifestData ? undefined : Buffer.concat(keep);
      }
      members.push({ ...member, sha256: hash.digest('hex'), bytes });
    },
    limits,
  );
  return verifyMembers(members, manifestData);
}
