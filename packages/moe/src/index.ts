/** @kestrel/moe — filled by its issue. */
export {};
