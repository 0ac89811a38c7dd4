/** Overlays: boxes, labels and masks drawn onto images with sharp. */
export { drawOverlay, labelColour, OverlayOptionsSchema, type OverlayObject, type OverlayOptions } from './draw.js';
