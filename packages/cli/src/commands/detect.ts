import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

/** `kestrel detect` / `kestrel segment`: run a detector on images, optionally draw an overlay. */
function detectCommand(task: 'detect' | 'segment'): CommandSpec {
  return {
    path: [task],
    summary: task === 'detect' ? 'detect objects in images (boxes, labels, scores), optionally draw an overlay' : 'instance segmentation (boxes + masks as COCO RLE): YOLO-seg ONNX models or selfie (person)',
    help: `Usage: kestrel ${task} IMAGE... --model ${task === 'detect' ? 'centernet|nanodet|FILE.onnx|DIR' : 'selfie|FILE.onnx|DIR'} [--out overlay.png]
       [--score 0.3] [--max 100] [--iou T] [--classes person,car] [--backend wasm|cpu] [--provider cpu|cuda] [--json]

Prints one line per object (label, score, COCO box [x, y, w, h] in image pixels) or, with --json, the
detections per image. --out draws boxes and labels${task === 'segment' ? ' and masks' : ''} onto the image (PNG; with several
images, FILE gets the image index appended). Built-in models are fetched with "kestrel models pull NAME".`,
    options: {
      model: { type: 'string', short: 'm' }, out: { type: 'string', short: 'o' }, score: { type: 'string' }, max: { type: 'string' },
      iou: { type: 'string' }, classes: { type: 'string' }, backend: { type: 'string' }, provider: { type: 'string' },
    },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const v = ctx.values;
      if (ctx.positionals.length === 0) throw new KestrelError('E_OPTIONS', `give at least one image: kestrel ${task} IMAGE --model NAME`);
      if (typeof v.model !== 'string') throw new KestrelError('E_OPTIONS', `--model is required (e.g. --model centernet). Run "kestrel ${task} --help".`);
      const num = (x: unknown, name: string): number | undefined => {
        if (typeof x !== 'string') return undefined;
        const n = Number(x);
        if (!Number.isFinite(n)) throw new KestrelError('E_OPTIONS', `--${name} must be a number, got "${x}"`);
        return n;
      };
      const { pipeline, drawOverlay, writeFileAtomic } = await import('@kestrel/pipelines');
      const opts = {
        model: v.model,
        scoreThreshold: num(v.score, 'score') ?? 0.3,
        ...(num(v.max, 'max') !== undefined ? { maxDetections: num(v.max, 'max') } : {}),
        ...(num(v.iou, 'iou') !== undefined ? { iou: num(v.iou, 'iou') } : {}),
        ...(typeof v.classes === 'string' ? { classes: v.classes.split(',').map((s) => s.trim()).filter(Boolean).map((s) => (/^\d+$/.test(s) ? Number(s) : s)) } : {}),
        ...(typeof v.backend === 'string' ? { backend: v.backend } : {}),
        ...(typeof v.provider === 'string' ? { executionProvider: v.provider } : {}),
      };
      const run = (await pipeline(task, opts as never)) as (imgs: string[]) => Promise<Array<Array<{ bbox: [number, number, number, number]; score: number; categoryId: number; label: string; mask?: { size: [number, number]; counts: string } }>>>;
      const results: Array<{ image: string; objects: unknown[]; overlay?: string }> = [];
      try {
        for (const [i, img] of ctx.positionals.entries()) {
          let objs: Awaited<ReturnType<typeof run>>[number] | undefined;
          try {
            [objs] = await run([img]);
          } catch (e) {
            // the images before this one are done and their overlays are complete files: keep them, and say so
            const done = results.filter((r) => r.overlay).map((r) => r.overlay!);
            if (done.length === 0 || !(e instanceof KestrelError)) throw e;
            throw new KestrelError(e.code, `${e.message} (stopped at image ${i + 1} of ${ctx.positionals.length}; the overlays of the ${done.length} image(s) before it were written: ${done.join(', ')})`, { cause: e });
          }
          const entry: { image: string; objects: unknown[]; overlay?: string } = { image: img, objects: objs! };
          if (typeof v.out === 'string') {
            const path = ctx.positionals.length === 1 ? v.out : v.out.replace(/(\.[^./]+)?$/, `-${i}$1`);
            await writeFileAtomic(path, await drawOverlay(img, objs!));
            entry.overlay = path;
          }
          results.push(entry);
          if (!ctx.json) {
            ctx.out.write(`${img}: ${objs!.length} object(s)\n`);
            for (const d of objs!) ctx.out.write(`  ${d.label.padEnd(14)} ${d.score.toFixed(3)}  [${d.bbox.map((x) => x.toFixed(1)).join(', ')}]${d.mask ? '  +mask' : ''}\n`);
            if (entry.overlay) ctx.out.write(`  overlay -> ${entry.overlay}\n`);
          }
        }
      } finally {
        await (run as unknown as { dispose(): Promise<void> }).dispose();
      }
      if (ctx.json) printJson(ctx, results);
    },
  };
}

export const commands: CommandSpec[] = [detectCommand('detect'), detectCommand('segment')];
