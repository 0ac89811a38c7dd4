/** @kestrel/projector — filled by its issue. */
export {};
