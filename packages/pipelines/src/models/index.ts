/** Model store: pull pretrained weights by name, list them, resolve names and paths. */
export { registerModel, modelCatalog, catalogEntry, type ModelEntry, type ModelFile, type ModelFormat } from './catalog.js';
export { kestrelHome, modelCacheDir, repoModelsDir } from './paths.js';
export { PulledManifestSchema, type PulledManifest } from './manifest.js';
export { pullModel, type PullOptions, type PullResult } from './pull.js';
export { listModels, type ModelListing } from './listing.js';
export { resolveModel, findMainFile, findNamedModelDir, modelSearchRoots, type ResolvedModel } from './resolve.js';
