/**
 * Turn a call that reports pieces through a callback into an async generator: pieces queue up while the
 * call runs; the generator's return value is the call's result (its error is thrown after the pieces).
 */
export async function* streamed<R>(start: (onText: (t: string) => void) => Promise<R>): AsyncGenerator<string, R, undefined> {
  const queue: string[] = [];
  let wake: (() => void) | null = null;
  let done = false;
  const p = start((t) => { queue.push(t); wake?.(); }).finally(() => { done = true; wake?.(); });
  p.catch(() => undefined);
  for (;;) {
    while (queue.length) yield queue.shift()!;
    if (done) break;
    await new Promise<void>((res) => { wake = res; });
    wake = null;
  }
  return await p;
}
