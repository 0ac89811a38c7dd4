/** Model store: pull pretrained weights by name, list them, resolve names and paths. */
export {
  registerModel, modelCatalog, catalogEntry, kestrelHome, modelCacheDir, repoModelsDir, pullModel, listModels,
  resolveModel, findMainFile,
  type ModelEntry, type ModelFile, type ModelFormat, type PulledManifest, type PullOptions, type PullResult,
  type ModelListing, type ResolvedModel,
} from './store.js';
