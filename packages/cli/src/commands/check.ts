import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

const HELP = `Usage: kestrel check --model DIR [--json]

Checks a DeepSeek-VL2 or DeepSeek-V2 checkpoint folder as published without reading any weight:
config.json is parsed as DeepSeek's code reads it (keys it ignores are accepted, unknown keys are a
one-line warning, unsupported values fail naming the key), then every tensor name and shape in the
safetensors headers (model.safetensors or a sharded model.safetensors.index.json) is compared with
what config.json describes. Prints the parameter count; fails with E_CHECKPOINT_FORMAT naming
missing, unexpected or mis-shaped tensors.`;

/** `kestrel check`: config + tensor-header check of a checkpoint folder. */
export const commands: CommandSpec[] = [
  {
    path: ['check'],
    summary: 'check a DeepSeek-VL2 / DeepSeek-V2 checkpoint folder (config keys, tensor names and shapes) without loading it',
    help: HELP,
    allowPositionals: false,
    options: { model: { type: 'string' } },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      if (typeof ctx.values.model !== 'string') throw new KestrelError('E_OPTIONS', '--model DIR is required. Run "kestrel check --help".');
      const { checkCheckpoint } = await import('@kestrel/pipelines');
      const r = await checkCheckpoint(ctx.values.model);
      if (ctx.json) { printJson(ctx, r); return; }
      ctx.out.write(`${r.dir}: ${r.kind}, ${r.tensors} tensors, ${r.parameters.toLocaleString('en-US')} parameters; the weights match config.json\n`);
    },
  },
];
