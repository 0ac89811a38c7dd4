/** @kestrel/eval — filled by its issue. */
export {};
export * from './captions/index.js';
export * from './classification/index.js';
export * from './coco/index.js';
export * as mask from './mask/index.js';
export * from './bench/index.js';
