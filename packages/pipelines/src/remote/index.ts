/** Pipelines on a remote OpenAI-compatible model server (`model: 'openai:URL'`); registry.ts routes here. */
import { createPipeline as createChatPipeline } from './pipelines.js';
import { createRemoteGround } from './ground.js';
import type { AskPipeline, CaptionPipeline, ChatPipeline } from '../vlm/pipelines.js';
import type { GroundPipeline } from '../vlm/ground.js';

/** Task module entry for remote models: 'ask', 'caption', 'chat' or 'ground' on the server named by `model: 'openai:URL'`. */
export async function createPipeline(task: string, options: unknown): Promise<AskPipeline | CaptionPipeline | ChatPipeline | GroundPipeline> {
  return task === 'ground' ? createRemoteGround(options) : createChatPipeline(task, options);
}
export { isRemoteModel, remoteBaseUrl, DEFAULT_API_KEY_ENV, REMOTE_PREFIX, type RemoteModelInfo } from './options.js';
export { RemoteChatClient, type WireMessage, type WireSettings, type WireAnswer } from './client.js';
