import { Redis } from 'ioredis';

/** The BullMQ queue name every frontend and worker of one line shares (override with `name`). */
export const DEFAULT_QUEUE_NAME = 'kestrel-inspect';

/** A `redis://` URL with its password hidden, for messages. */
export function redactRedisUrl(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
}

/** True for a `redis://` or `rediss://` URL. */
export function isRedisUrl(spec: string): boolean {
  return /^rediss?:\/\//i.test(spec);
}

/**
 * One ioredis connection as BullMQ wants it (`maxRetriesPerRequest: null`: blocking commands wait
 * through a Redis restart instead of failing). BullMQ cannot load ioredis by itself under ESM.
 */
export function redisConnection(url: string): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, lazyConnect: false });
  // Connection errors are retried by ioredis; they surface as failed commands, not as a crash.
  r.on('error', () => undefined);
  return r;
}
