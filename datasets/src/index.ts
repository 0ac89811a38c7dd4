/** @kestrel/datasets — filled by its issue. */
export {};
