/**
 * Split a server-sent-events body into the `data:` payloads of its events (the only field the OpenAI
 * streaming format uses), as they arrive. An event is dispatched at its blank line; one cut off by the
 * end of the stream is dropped.
 */
export async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string, void, undefined> {
  const decoder = new TextDecoder();
  let buf = '';
  let data: string[] = [];
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buf += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        // A CR at the end of what has arrived may be the first half of a CRLF: wait for the next bytes.
        if (!done && nl === buf.length - 1 && buf.endsWith('\r')) break;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          if (data.length) yield data.join('\n');
          data = [];
        } else if (line.startsWith('data:')) data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
        // other fields (event:, id:, retry:) and comments (":") are not used by the chat format
      }
      if (done) break;
    }
    // An event cut off by the end of the stream is not dispatched (as the SSE spec says).
  } finally {
    reader.releaseLock();
  }
}
