import { describe, expect, it } from 'vitest';
import { sseData } from './sse.js';

async function events(parts: string[]): Promise<string[]> {
  const enc = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({ start(c) { for (const p of parts) c.enqueue(enc.encode(p)); c.close(); } });
  const out: string[] = [];
  for await (const d of sseData(body)) out.push(d);
  return out;
}

describe('sseData (server-sent events, data fields only)', () => {
  it('splits events on blank lines with LF, CRLF or CR, also when a CRLF is cut between chunks', async () => {
    expect(await events(['data: {"a":1}\r', '\n\r\n', 'data: [DO', 'NE]\n\n'])).toEqual(['{"a":1}', '[DONE]']);
    expect(await events(['data: x\r\rdata: y\n\n'])).toEqual(['x', 'y']);
  });
  it('joins multi-line data with LF, skips comments and other fields, drops an event the stream cuts off', async () => {
    expect(await events([': keep-alive\n\nevent: message\nid: 7\ndata: line1\ndata:line2\n\n', 'data: tail'])).toEqual(['line1\nline2']);
  });
  it('decodes UTF-8 split across chunks', async () => {
    const bytes = new TextEncoder().encode('data: é✓\n\n');
    const enc = new TextDecoder();
    const body = new ReadableStream<Uint8Array>({ start(c) { c.enqueue(bytes.subarray(0, 7)); c.enqueue(bytes.subarray(7)); c.close(); } });
    const out: string[] = [];
    for await (const d of sseData(body)) out.push(d);
    expect(out).toEqual(['é✓']);
    expect(enc.decode(bytes.subarray(0, 7))).not.toContain('é'); // the cut really falls inside the character
  });
});
