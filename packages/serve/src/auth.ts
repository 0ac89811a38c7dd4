import { createHash, timingSafeEqual } from 'node:crypto';
import { KestrelError } from '@kestrel/core';

/** A configured API key: only its sha256 is kept in memory or in a config file. */
export interface ApiKey {
  /** Hex sha256 of the key. */
  sha256: string;
  /** Stations this key may submit to and read; undefined = all stations. */
  stations?: string[] | undefined;
  /** A label for logs (never the key itself). */
  name?: string | undefined;
}

/** Hex sha256 of a key, as stored in config files (`kestrel serve --hash-key KEY` prints it). */
export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/**
 * Parse a `--api-key` value: `KEY` (all stations) or `KEY:station1,station2` (scoped). The key itself is
 * hashed at once and not kept.
 */
export function parseApiKeyFlag(value: string, index = 0): ApiKey {
  const colon = value.lastIndexOf(':');
  const key = colon > 0 ? value.slice(0, colon) : value;
  const stations = colon > 0 ? value.slice(colon + 1).split(',').map((s) => s.trim()).filter(Boolean) : undefined;
  if (key.length < 8) throw new KestrelError('E_OPTIONS', `--api-key #${index + 1} is shorter than 8 characters; use a long random key (e.g. openssl rand -hex 24)`);
  if (colon > 0 && (!stations || stations.length === 0)) throw new KestrelError('E_OPTIONS', `--api-key #${index + 1} ends with ":" but names no stations`);
  return { sha256: hashKey(key), stations, name: `key${index + 1}` };
}

/**
 * Find the key presented in an `Authorization: Bearer KEY` header. Every configured hash is compared in
 * constant time (and all of them are compared), so timing does not leak which bytes matched.
 */
export function authenticate(header: string | undefined, keys: readonly ApiKey[]): ApiKey | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) return undefined;
  const presented = Buffer.from(hashKey(m[1]!), 'hex');
  let found: ApiKey | undefined;
  for (const k of keys) {
    const stored = Buffer.from(k.sha256, 'hex');
    if (stored.length === presented.length && timingSafeEqual(stored, presented) && !found) found = k;
  }
  return found;
}

/** True when `key` may act on `station`. */
export function mayUseStation(key: ApiKey, station: string): boolean {
  return key.stations === undefined || key.stations.includes(station);
}
