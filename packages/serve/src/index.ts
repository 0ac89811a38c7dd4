// @kestrel/serve: the QC inspection server, its durable inspection log and the folder watcher.
export { createServer, HttpError, type KestrelServer, type ServerDeps, type InspectResponse, type ErrorBody, type ServeErrorCode } from './server.js';
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
export type { InspectionStore, InspectionJob, InspectionJobResult, InspectionJobQueue } from './scale-out.js';
export { runServeCommand } from './cli/serve-command.js';
export { runWatchCommand } from './cli/watch-command.js';
export type { CliContext } from './cli/context.js';
