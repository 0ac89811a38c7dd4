/** @kestrel/eval — filled by its issue. */
export {};
