/**
 * Ask a question about an image with a local DeepSeek-VL2-format checkpoint, three ways: the `ask`
 * pipeline (streaming), the OpenAI-style `chat` API, and token-level `generate`.
 *
 * Run from the repository root (after `npm run build`):
 *   npx tsc examples/sdk-query.ts --module nodenext --target es2022 --types node --skipLibCheck --outDir examples/dist
 *   node examples/dist/sdk-query.js [MODEL_DIR] [IMAGE] ["question"]
 * Defaults use the tiny random-weight test checkpoint, so the answer is gibberish but the calls are real.
 */
import { pathToFileURL } from 'node:url';
import { pipeline, VisionLanguageModel } from '@kestrel/pipelines';

// Command-line arguments only when run directly (the test suite imports this file).
const args = process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href ? process.argv.slice(2) : [];
// Defaults are relative to the repository root (run it from there).
const modelDir = args[0] ?? 'test/fixtures/vlm/A';
const image = args[1] ?? 'test/fixtures/vlm/A/img0.png';
const question = args[2] ?? 'What is wrong with this part?';

// 1. Load once; pipelines can share the loaded model.
const model = await VisionLanguageModel.load(modelDir);

// 2. The ask pipeline: stream the answer, then read the usage.
const ask = await pipeline('ask', { model, maxNewTokens: 32 });
const stream = ask.stream(image, question);
let step = await stream.next();
while (!step.done) {
  process.stdout.write(step.value);
  step = await stream.next();
}
const { usage } = step.value;
console.log(`\n[${usage.promptTokens} prompt tokens, ${usage.imageTokens} of them image tokens; ${usage.completionTokens} generated in ${usage.ms.toFixed(0)} ms]`);

// 3. The same question as OpenAI-style messages.
const reply = await model.chat([
  { role: 'user', content: [{ type: 'image', image }, { type: 'text', text: question }] },
], { maxNewTokens: 32 });
console.log('chat:', JSON.stringify(reply.message.content));

// 4. Token level: build the prompt ids yourself (image tokens expanded by the processor).
const pre = await model.processor.preprocess([image]);
console.log('tiles:', pre.pixelValues.shape, 'spatial crop:', pre.imagesSpatialCrop, 'image tokens:', pre.numImageTokens);
const tok = model.tokenizer!;
const { inputIds } = model.processor.tokenizeWithImages(`<|User|>: <image>\n${question}\n\n<|Assistant|>:`, pre.numImageTokens, (t) => tok.encode(t));
const { logits } = await model.forward({ inputIds, images: [image] });
const { tokenIds } = await model.generate({ inputIds, images: [image] }, { maxNewTokens: 8, temperature: 0 });
console.log('logits:', logits.shape, 'greedy ids:', tokenIds, '->', JSON.stringify(tok.decode(tokenIds)));

model.dispose();
