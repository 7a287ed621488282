/**
 * Every error orderly raises on purpose. `code` is stable across Rust and JS
 * (`ERR_WAL_LOCKED`, `ERR_WAL_CORRUPT`, `ERR_WAL_POISONED`, `ERR_WAL_CLOSED`,
 * `ERR_INVALID_ARG`, `ERR_WAL_VERSION`, `ERR_WAL_IO`), so callers branch on it
 * rather than on messages.
 */
export class OrderlyError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OrderlyError';
    this.code = code;
  }

  /** The native addon throws plain `Error`s carrying `code`; give callers one class to catch. */
  static from(err: unknown): OrderlyError {
    if (err instanceof OrderlyError) return err;
    if (err instanceof Error) {
      const code = (err as { code?: unknown }).code;
      return new OrderlyError(typeof code === 'string' ? code : 'ERR_INTERNAL', err.message, { cause: err });
    }
    return new OrderlyError('ERR_INTERNAL', String(err));
  }
}
