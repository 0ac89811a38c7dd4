/** @kestrel/pipelines — filled by its issue. */
export {};
