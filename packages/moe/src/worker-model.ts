import { KestrelError, Tensor, WorkerClient, callbackStream, parseOptions, threadsPerWorker, workerScript } from '@kestrel/core';
import { loadOptionsSchema, type LoadOptions } from './model.js';
import type { GenerateInput, GenerateOptions, GenerateResult, StreamChunk } from './generation.js';
import type { MoeWorkerCall, MoeWorkerInfo, MoeWorkerInit } from './moe-worker.js';

/**
 * A {@link MoeLanguageModel} loaded in a worker thread: `generate`, `generateBatch` and `stream` as on
 * the in-process model, while the caller's event loop stays free (the prefill of a long prompt holds
 * the worker's thread, not the caller's). Weights are read and kept in the worker only.
 *
 * @example
 * const lm = await MoeWorkerModel.load(dir, { dtype: 'int8' });
 * for await (const c of lm.stream({ prompt: 'Hello' }, { maxNewTokens: 8 })) process.stdout.write(c.text ?? '');
 * await lm.dispose();
 */
export class MoeWorkerModel {
  private constructor(private readonly client: WorkerClient, /** facts about the loaded model */ readonly info: MoeWorkerInfo, readonly dir: string) {}

  /**
   * Load a checkpoint (the options of `MoeLanguageModel.load`, minus `kernels` and `onProgress`, which
   * cannot cross threads) in a new worker. `threads` defaults to every core but one (the caller's
   * event loop keeps a core; see `modelCores`).
   */
  static async load(dir: string, options: Omit<LoadOptions, 'kernels' | 'onProgress'> = {}): Promise<MoeWorkerModel> {
    if (typeof dir !== 'string' || dir === '') throw new KestrelError('E_OPTIONS', 'MoeWorkerModel.load needs a checkpoint directory');
    if ((options as LoadOptions).kernels !== undefined || (options as LoadOptions).onProgress !== undefined) {
      throw new KestrelError('E_OPTIONS', 'kernels and onProgress live on the calling thread; use MoeLanguageModel.load for them');
    }
    // validate here so a bad option fails before a worker starts
    parseOptions(loadOptionsSchema, options, 'MoeWorkerModel.load options');
    const init: MoeWorkerInit = { dir, options: { threads: threadsPerWorker(1), ...options } };
    const client = new WorkerClient({ script: workerScript(import.meta.url, './moe-worker.js'), init });
    const info = (await client.start()) as MoeWorkerInfo;
    return new MoeWorkerModel(client, info, dir);
  }

  get vocab(): number { return this.info.vocab; }
  get eosIds(): readonly number[] { return this.info.eosIds; }
  /** times the worker died and was replaced */
  get restarts(): number { return this.client.restarts; }

  async generate(input: GenerateInput, options?: GenerateOptions): Promise<GenerateResult> {
    return (await this.generateBatch([input], options))[0]!;
  }

  async generateBatch(inputs: GenerateInput[], options?: GenerateOptions): Promise<GenerateResult[]> {
    const { signal, ...rest } = options ?? {};
    return this.client.call<GenerateResult[]>('generateBatch', callOf(inputs, rest), signal ? { signal } : {});
  }

  /** Stream the new tokens of one prompt as the worker picks them. */
  async *stream(input: GenerateInput, options?: GenerateOptions): AsyncGenerator<StreamChunk> {
    const { signal, ...rest } = options ?? {};
    yield* callbackStream<StreamChunk, number>((onPiece) => this.client.call<number>('stream', callOf([input], rest), {
      ...(signal ? { signal } : {}),
      onEvent: (c) => onPiece(c as StreamChunk),
    }));
  }

  /** Token ids of `text` with the checkpoint's tokenizer (in the worker). */
  encode(text: string): Promise<number[]> {
    return this.client.call<number[]>('encode', text);
  }

  /** Resident memory of the whole process, measured in the worker (the model's pages are counted there). */
  rss(): Promise<number> {
    return this.client.call<number>('memory', null);
  }

  /** Release the model and stop its worker. */
  dispose(): Promise<void> {
    return this.client.close();
  }
}

function callOf(inputs: GenerateInput[], options: Omit<GenerateOptions, 'signal'>): MoeWorkerCall {
  // a Tensor is a class instance: send its data (the worker rebuilds nothing, generate accepts a Float32Array)
  return { inputs: inputs.map((i) => (i.inputsEmbeds instanceof Tensor ? { ...i, inputsEmbeds: i.inputsEmbeds.data as Float32Array } : i)), options };
}
