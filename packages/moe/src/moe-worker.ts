/**
 * Worker-thread entry of {@link MoeWorkerModel}: the checkpoint is read and kept here, generation runs
 * here, tokens go back to the caller as events.
 */
import { KestrelError, serveWorker, type CallContext } from '@kestrel/core';
import { MoeLanguageModel, type LoadOptions } from './model.js';
import type { GenerateInput, GenerateOptions } from './generation.js';

/** What the caller sends to start the worker. */
export interface MoeWorkerInit { dir: string; options: LoadOptions }

/** One generate call: inputs and the options that can cross (no signal: the call's own abort is used). */
export interface MoeWorkerCall { inputs: GenerateInput[]; options: Omit<GenerateOptions, 'signal'> }

/** Plain facts about the loaded model, mirrored on the caller's side. */
export interface MoeWorkerInfo { vocab: number; hidden: number; nLayers: number; eosIds: number[]; dtype: string; weightBytes: number; hasTokenizer: boolean; rssBytes: number }

serveWorker(async (data) => {
  const { dir, options } = data as MoeWorkerInit;
  const model = await MoeLanguageModel.load(dir, options);
  const info: MoeWorkerInfo = {
    vocab: model.config.vocab, hidden: model.config.hidden, nLayers: model.config.nLayers, eosIds: [...model.eosIds],
    dtype: model.dtype, weightBytes: model.weightBytes, hasTokenizer: model.tokenizer !== null, rssBytes: process.memoryUsage.rss(),
  };
  const check = (c: MoeWorkerCall): void => {
    if (!Array.isArray(c?.inputs) || c.inputs.length === 0) throw new KestrelError('E_OPTIONS', 'generate needs at least one input');
  };
  return {
    info,
    handlers: {
      generateBatch: async (c: MoeWorkerCall, ctx: CallContext) => {
        check(c);
        return model.generateBatch(c.inputs, { ...c.options, signal: ctx.signal });
      },
      stream: async (c: MoeWorkerCall, ctx: CallContext) => {
        check(c);
        let n = 0;
        for await (const chunk of model.stream(c.inputs[0]!, { ...c.options, signal: ctx.signal })) { ctx.emit(chunk); n++; }
        return n;
      },
      encode: (text: string) => {
        if (!model.tokenizer) throw new KestrelError('E_OPTIONS', `${dir} has no tokenizer.json`);
        return model.tokenizer.encode(text);
      },
      memory: () => process.memoryUsage.rss(),
    },
    close: () => model.dispose(),
  };
});
