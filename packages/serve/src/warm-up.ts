import sharp from 'sharp';

/**
 * The `i`-th synthetic warm-up image: 256×256 mid-gray PNG with noise, so a model does real work rather
 * than a shortcut on a flat image. The first calls of a model are slow (kernel set-up); servers and
 * workers run a few of these before taking traffic.
 */
export async function warmUpImage(i: number): Promise<Buffer> {
  const px = Buffer.alloc(256 * 256);
  for (let j = 0; j < px.length; j++) px[j] = 96 + ((j * 2654435761 + i * 97) >>> 27);
  return sharp(px, { raw: { width: 256, height: 256, channels: 1 } }).png().toBuffer();
}
