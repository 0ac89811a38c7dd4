/** Benchmarks of the evaluation harness, callable from `kestrel bench eval` / `kestrel bench all`. */
export { runCocoBench, generateCocoBenchCase, COCO_BENCH_DEFAULT, type CocoBenchResult, type CocoBenchOptions, type CocoBenchSize } from './coco-bench.js';
