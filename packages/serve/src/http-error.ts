/** An error with an HTTP status and an error code of its own, for the server's error handler. */
export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}
