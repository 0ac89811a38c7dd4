/**
 * @kestrel/serve: the QC inspection server (`createServer`), its durable inspection stores
 * (`InspectionLog` on SQLite, `PostgresStore`), the folder watcher (`DirectoryWatcher`), inspectors over
 * Kestrel's pipelines, and the pieces for several machines (`BullInspectionQueue`, `startInspectionWorker`).
 *
 * @example
 * import { createServer, InspectionLog, createDefectsInspector, parseApiKeyFlag } from '@kestrel/serve';
 * const server = await createServer({
 *   config: { port: 8080, apiKeys: [parseApiKeyFlag('my-secret-key')] },
 *   log: InspectionLog.open('inspections.db'),
 *   inspector: await createDefectsInspector({ model: 'defects-elpv' }),
 * });
 * console.log(await server.listen());
 *
 * @packageDocumentation
 */
export { createServer, HttpError, type KestrelServer, type ServerDeps, type ServerOptions, type InspectResponse, type ErrorBody, type ServeErrorCode } from './server.js';
export { ServeConfigSchema, StationSchema, PartIdSchema, loadServeConfigFile, type ServeConfig, type ServeConfigInput } from './config.js';
export { InspectionLog, type NewInspection, type InspectionRecord, type ListQuery, type WindowFigures, type JournalEntry } from './inspection-log.js';
export { MIGRATIONS, SCHEMA_VERSION, migrate, type Migration } from './migrations.js';
export { createDefectsInspector, DefectsInspectorOptionsSchema, DEFAULT_MAX_IMAGE_PIXELS, heatmapRegions, probeImage, sha256File, type DefectsInspectorOptions, type Defect, type InspectionResult, type Inspector, type ModelIdentity, type Verdict } from './inspector.js';
export { createDetectInspector, applyDetectRules, DetectRulesSchema, type DetectRules } from './detect-inspector.js';
export { createInspector, readRules, type InspectPipelineName } from './inspectors.js';
export { DirectoryWatcher, WatchOptionsSchema, type WatchOptions, type WatchEvent } from './watcher.js';
export { createVlmChatBackend, registerChatRoute, type ChatBackend, type BackendMessage, type BackendOptions } from './chat-route.js';
export { hashKey, parseApiKeyFlag, authenticate, mayUseStation, type ApiKey } from './auth.js';
export { WorkQueue, QueueError } from './work-queue.js';
export { Metrics, type Labels } from './metrics.js';
export { percentile, statsReport, type StatsReport } from './stats.js';
export type { InspectionStore, InspectionJob, InspectionJobQueue } from './scale-out.js';
export { PostgresStore, type PostgresStoreOptions } from './stores/postgres-store.js';
export { PG_MIGRATIONS, migratePostgres } from './stores/postgres-migrations.js';
export { openStore, isPostgresUrl } from './stores/open-store.js';
export { BullInspectionQueue, type BullQueueOptions } from './queues/bull-queue.js';
export { startInspectionWorker, type InspectionWorker, type InspectionWorkerOptions } from './queues/bull-worker.js';
export { isRedisUrl, DEFAULT_QUEUE_NAME } from './queues/redis.js';
export { runServeCommand } from './cli/serve-command.js';
export { runWatchCommand } from './cli/watch-command.js';
export type { CliContext } from './cli/context.js';
