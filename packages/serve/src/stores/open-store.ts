import { InspectionLog } from '../inspection-log.js';
import type { InspectionStore } from '../scale-out.js';
import { PostgresStore } from './postgres-store.js';

/** True for a `postgres://` or `postgresql://` URL (else the store is a SQLite file). */
export function isPostgresUrl(spec: string): boolean {
  return /^postgres(ql)?:\/\//i.test(spec);
}

/**
 * Open the inspection store named by `--store` / `--db`: a `postgres://…` URL opens {@link PostgresStore},
 * anything else is a SQLite file for {@link InspectionLog} (`:memory:` for a throwaway one).
 */
export async function openStore(spec: string): Promise<InspectionStore & { readonly file: string }> {
  return isPostgresUrl(spec) ? PostgresStore.open(spec) : InspectionLog.open(spec);
}
