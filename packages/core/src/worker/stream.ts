/**
 * Turn a call that reports pieces through a callback into an async generator: pieces queue up while
 * the call runs and are yielded in order; the generator returns the call's result (or throws its error).
 */
export async function* callbackStream<T, R>(start: (onPiece: (piece: T) => void) => Promise<R>): AsyncGenerator<T, R, undefined> {
  const queue: T[] = [];
  let wake: (() => void) | null = null;
  let done = false;
  const p = start((x) => { queue.push(x); wake?.(); }).finally(() => { done = true; wake?.(); });
  p.catch(() => undefined); // observed below; avoid an unhandled rejection while pieces drain
  for (;;) {
    while (queue.length) yield queue.shift()!;
    if (done) break;
    await new Promise<void>((r) => { wake = r; });
    wake = null;
  }
  return await p;
}
