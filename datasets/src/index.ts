/** @kestrel/datasets — filled by its issue. */
export {};
export { loadCocoDataset, type CocoDataset, type CocoImageRef } from './coco.js';
