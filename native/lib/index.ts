/**
 * @kestrel/native — the kernel contract, the portable TypeScript kernels (the reference every other
 * backend is tested against) and the loader for the C++ addon.
 */
export * from './contract.js';
export { portableKernels, quantizeQ8, decodeRow } from './portable/index.js';
export { getKernels, availableBackends, backendInfo, type BackendInfo, type BackendChoice, type GetKernelsOptions } from './select.js';
export { loadCudaKernels, cudaAvailability, type CudaKernels } from './cuda.js';
export { withOpChecks } from './op-checks.js';
export { DeviceBuffer, DeviceView, type DeviceOps, type DeviceExpertGroup, type DeviceGraph } from './cuda-device.js';
export { BYTES_PER_PARAM, activeWeightBytes, activeParams, mlaAttentionParams } from './decode-bound.js';
export { probeMachine, type MachineProbe } from './probe.js';
export { mapsFiles } from './mmap.js';
export { tensorToLinear, type WeightDType } from './weight-format.js';
