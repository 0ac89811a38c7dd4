import type { Candidate } from './geometry.js';

/** Post-processing settings a detector receives for one call. */
export interface DecodeSettings {
  scoreThreshold: number;
  /** IoU threshold of NMS (detectors whose graph already suppresses ignore it). */
  iou: number;
  maxDetections: number;
  /** Keep only these class indices (undefined: all). */
  classes?: ReadonlySet<number>;
}

/** What a detector's run returns: candidates in model-input pixels. */
export interface DetectorOutput {
  cands: Candidate[];
  /** Milliseconds spent inside the model runtime (tensor in -> tensor out). */
  modelMs: number;
  /**
   * Instance masks for the kept candidates, in model-input pixels (`inputWidth * inputHeight` bytes,
   * 1 = inside), when the model segments.
   */
  masks?: Uint8Array[];
}

/** A loaded detection/segmentation model behind one runtime. */
export interface Detector {
  /** e.g. `centernet`, `nanodet`, `yolo-detect`, `yolo-segment`. */
  readonly kind: string;
  readonly inputWidth: number;
  readonly inputHeight: number;
  /** Gray level of the letterbox padding the model was trained with. */
  readonly padValue: number;
  /** How images reach the input size: `letterbox` (default, aspect kept) or `stretch`. */
  readonly resize?: 'letterbox' | 'stretch';
  /** Class names, index = model class index. */
  readonly labels: readonly string[];
  /** COCO category id of each class index. */
  readonly categoryIds: readonly number[];
  /** Default NMS IoU for this model. */
  readonly defaultIou: number;
  /** The runtime in use, e.g. `tfjs-wasm`, `onnx-cpu`. */
  readonly runtime: string;
  /** Run on a letterboxed HWC RGB input of inputWidth x inputHeight. */
  run(input: Uint8Array, s: DecodeSettings): Promise<DetectorOutput>;
  dispose(): Promise<void>;
}
