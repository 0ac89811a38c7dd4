/** Every task a Kestrel build knows about, and its module relative to this package's src/ (loaded lazily). */
export const TASK_MODULES: Record<string, string> = {
  detect: './detect/index.js',
  segment: './detect/index.js',
  xray: './xray/index.js',
  defects: './defects/index.js',
  ask: './vlm/pipelines.js',
  caption: './vlm/pipelines.js',
  ground: './vlm/ground.js',
  chat: './vlm/pipelines.js',
};

/** A task module exports `createPipeline(task, options)`. */
export interface TaskModule {
  createPipeline(task: string, options: unknown): Promise<unknown>;
}
