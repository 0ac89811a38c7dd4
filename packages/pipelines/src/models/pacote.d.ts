// Minimal typings for the part of pacote Kestrel uses (the package ships none).
declare module 'pacote' {
  import type { Readable } from 'node:stream';
  export interface PacoteOptions { integrity?: string; cache?: string; registry?: string; preferOnline?: boolean }
  export interface Manifest { name: string; version: string; _resolved: string; _integrity: string }
  export function manifest(spec: string, opts?: PacoteOptions): Promise<Manifest>;
  export const tarball: {
    stream<T>(spec: string, handler: (stream: Readable) => Promise<T>, opts?: PacoteOptions): Promise<T>;
  };
  const pacote: { manifest: typeof manifest; tarball: typeof tarball };
  export default pacote;
}
