/**
 * @kestrel/pipelines — task pipelines (detect, segment, xray, defects, ask, caption) on the Kestrel
 * engine, ONNX Runtime and TensorFlow.js, plus the VisionLanguageModel.
 */
export { pipeline, pipelineTasks, type PipelineTasks } from './registry.js';
