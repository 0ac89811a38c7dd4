/** Kestrel's worker-thread runtime: model work off the caller's thread. */
export { WorkerClient, type WorkerSpec, type CallOptions as WorkerCallOptions } from './client.js';
export { WorkerPool, threadsPerWorker, modelCores } from './pool.js';
export { serveWorker, type CallContext, type WorkerHandlers, type WorkerSetup } from './serve.js';
export { serializeError, deserializeError, type SerializedError } from './protocol.js';
export { workerScript } from './script.js';
export { callbackStream } from './stream.js';
