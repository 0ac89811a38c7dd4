/** Pipelines on a remote OpenAI-compatible model server (`model: 'openai:URL'`); registry.ts routes here. */
export { createPipeline } from './pipelines.js';
export { isRemoteModel, remoteBaseUrl, DEFAULT_API_KEY_ENV, REMOTE_PREFIX, type RemoteModelInfo } from './options.js';
export { RemoteChatClient, type WireMessage, type WireSettings, type WireAnswer } from './client.js';
