import { KestrelError, type KestrelErrorCode } from '@kestrel/core';

const KESTREL_CODES = new Set<string>(['E_CHECKPOINT_FORMAT', 'E_IMAGE_DECODE', 'E_IMAGE_TOO_LARGE', 'E_IMAGE_TOKENS', 'E_OPTIONS', 'E_MODEL_NOT_FOUND', 'E_DATA_FORMAT', 'E_UNSUPPORTED']);

/** What an OpenAI-style error body says (`{ error: { code, message, type } }`), if anything. */
export function errorBody(x: unknown): { code?: string; message?: string } {
  const e = (x as { error?: unknown } | null)?.error;
  if (typeof e === 'string') return { message: e };
  if (typeof e !== 'object' || e === null) return {};
  const { code, message } = e as { code?: unknown; message?: unknown };
  return { ...(typeof code === 'string' ? { code } : {}), ...(typeof message === 'string' ? { message } : {}) };
}

/**
 * A KestrelError for an error answer of the remote server. A Kestrel server's own codes are kept (a
 * corrupt image stays E_IMAGE_DECODE); the rest map by HTTP status.
 */
export function remoteError(status: number, body: unknown, where: string, apiKeyEnv: string): KestrelError {
  const b = errorBody(body);
  const said = b.message ? `: ${b.message}` : '';
  let code: KestrelErrorCode;
  let hint = '';
  if (b.code && KESTREL_CODES.has(b.code)) code = b.code as KestrelErrorCode;
  else if (status === 404 || b.code === 'model_not_found') { code = 'E_MODEL_NOT_FOUND'; hint = ' Check remoteModel against the server\'s GET /v1/models.'; }
  else if (status === 401 || status === 403) { code = 'E_OPTIONS'; hint = ` Set the server's API key in $${apiKeyEnv}.`; }
  else if (status >= 400 && status < 500 && status !== 429) code = 'E_OPTIONS';
  else { code = 'E_BACKEND_UNAVAILABLE'; hint = ' The server is busy or failing; try again later.'; }
  return new KestrelError(code, `remote model server ${where} answered ${status}${said}.${hint}`, { details: { status, ...(b.code ? { remoteCode: b.code } : {}) } });
}
