import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

/** `kestrel quantize`: write a q8 (int8 weight-only, block 32) copy of a DeepSeek-V2 checkpoint. */
export const commands: CommandSpec[] = [
  {
    path: ['quantize'],
    summary: 'write an int8 (q8, block 32) copy of a DeepSeek-V2 MoE checkpoint',
    help: `Usage: kestrel quantize --model DIR --out DIR2 [--overwrite] [--json]

Quantizes every projection, expert and embedding matrix of a DeepseekV2ForCausalLM checkpoint to
8-bit weights with one f32 scale per block of 32 (like ggml Q8_0) and writes DIR2 (config.json,
model.safetensors, tokenizer and generation config copied). Norms and the router stay float.
Load DIR2 with dtype 'int8': no quantization at load time. DIR2 is written atomically.

  --model DIR    source checkpoint (F32, BF16 or F16 safetensors, sharded or not)
  --out DIR2     output directory (must not exist or be empty, unless --overwrite)
  --overwrite    replace a non-empty DIR2`,
    options: { model: { type: 'string' }, out: { type: 'string' }, overwrite: { type: 'boolean' } },
    allowPositionals: false,
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const model = ctx.values.model;
      const out = ctx.values.out;
      if (typeof model !== 'string' || typeof out !== 'string') throw new KestrelError('E_OPTIONS', 'kestrel quantize needs --model DIR and --out DIR2');
      const { quantizeCheckpoint } = await import('@kestrel/moe');
      const t0 = Date.now();
      let progress = false;
      let rep;
      try {
        rep = await quantizeCheckpoint(model, out, {
          overwrite: ctx.values.overwrite === true,
          onProgress: ctx.json ? undefined : (d, n) => { if (d === n || d % 50 === 0) { ctx.err.write(`\rquantize: ${d}/${n} tensors`); progress = true; } },
        });
      } finally {
        // End the progress line also on failure, so an error starts on its own line.
        if (progress) ctx.err.write('\n');
      }
      const res = { ...rep, seconds: (Date.now() - t0) / 1000, ratio: rep.outputBytes / rep.inputBytes };
      if (ctx.json) printJson(ctx, res);
      else ctx.out.write(`wrote ${rep.out}: ${rep.quantized} of ${rep.tensors} tensors quantized, ${(rep.inputBytes / 2 ** 20).toFixed(1)} MiB -> ${(rep.outputBytes / 2 ** 20).toFixed(1)} MiB in ${res.seconds.toFixed(1)} s\n`);
    },
  },
];
