/** The part of tar-stream 3 (no bundled types) that reports/tar.ts and its tests use. */
declare module 'tar-stream' {
  import type { Readable, Writable } from 'node:stream';

  export type EntryType =
    | 'file'
    | 'link'
    | 'symlink'
    | 'character-device'
    | 'block-device'
    | 'directory'
    | 'fifo'
    | 'contiguous-file'
    | 'pax-header'
    | 'pax-global-header'
    | 'gnu-long-link-path'
    | 'gnu-long-path'
    | null;

  export interface Headers {
    name: string;
    size?: number;
    mode?: number;
    mtime?: Date;
    type?: EntryType;
    linkname?: string | null;
    uid?: number;
    gid?: number;
    uname?: string;
    gname?: string;
    devmajor?: number;
    devminor?: number;
    pax?: Record<string, string> | null;
  }

  export interface Entry extends Readable {
    header: Headers;
  }

  export interface Extract extends Writable, AsyncIterable<Entry> {
    on(event: 'entry', listener: (header: Headers, stream: Readable, next: (err?: Error) => void) => void): this;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }

  export interface Pack extends Readable {
    entry(header: Headers, callback?: (err?: Error) => void): Writable;
    entry(header: Headers, buffer: string | Buffer, callback?: (err?: Error) => void): Writable;
    finalize(): void;
  }

  export function extract(opts?: { filenameEncoding?: string; allowUnknownFormat?: boolean }): Extract;
  export function pack(): Pack;
}
