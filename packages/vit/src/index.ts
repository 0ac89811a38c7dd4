/** @kestrel/vit — filled by its issue. */
export {};
