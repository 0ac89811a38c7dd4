/** @kestrel/datasets — filled by its issue. */
export {};
export { readLabelledImages, detectLabelsLayout, type LabelledImage, type LabelsLayout } from './labels.js';
export { listImageFiles, IMAGE_EXTENSIONS } from './folders.js';
export { loadCocoDataset, type CocoDataset, type CocoImageRef } from './coco.js';
