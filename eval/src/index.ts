/** @kestrel/eval — filled by its issue. */
export {};
export * from './captions/index.js';
export * from './classification/index.js';
