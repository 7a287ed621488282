import { OrderlyError } from '../errors.js';

/** Where an order's configuration problem is: as much of it as is known. */
export interface OrderFileErrorInit {
  /** What is wrong, without the location: `expected a string, got the integer 30`. */
  problem: string;
  /** The order file (absolute path), if the order came from a file. */
  file?: string;
  /** 1-based line in `file`. */
  line?: number;
  /** The key as the user wrote it: `interval`, `no_op_exit_codes`, `env.PATH`, `noOpExitCodes`. */
  field?: string;
  /** The order's name, when there is no file to point at (orders defined in code). */
  order?: string;
  cause?: unknown;
}

/**
 * A bad order definition: a file that does not parse, a missing or mistyped
 * field, two orders with one scoped name. One class with one `code` so a
 * controller can refuse a bad configuration without guessing at messages.
 *
 * The message reads `<file>:<line>: <field>: <problem>` with unknown parts
 * left out; an order defined in code reads `order "<name>": <field>: <problem>`.
 */
export class OrderFileError extends OrderlyError {
  readonly file: string | undefined;
  readonly line: number | undefined;
  readonly field: string | undefined;
  readonly order: string | undefined;
  readonly problem: string;

  constructor(init: OrderFileErrorInit) {
    super('ERR_ORDER_FILE', formatMessage(init), init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'OrderFileError';
    this.file = init.file;
    this.line = init.line;
    this.field = init.field;
    this.order = init.order;
    this.problem = init.problem;
  }

  /** The same problem, placed: fills in location parts this error does not have yet. */
  locate(where: { file?: string; line?: number; field?: string; order?: string }): OrderFileError {
    return new OrderFileError({
      problem: this.problem,
      file: this.file ?? where.file,
      line: this.line ?? where.line,
      field: this.field ?? where.field,
      order: this.order ?? where.order,
      cause: this.cause,
    });
  }
}

function formatMessage(init: OrderFileErrorInit): string {
  const parts: string[] = [];
  if (init.file !== undefined) parts.push(init.line === undefined ? init.file : `${init.file}:${init.line}`);
  else if (init.order !== undefined) parts.push(`order ${JSON.stringify(init.order)}`);
  if (init.field !== undefined) parts.push(init.field);
  parts.push(init.problem);
  return parts.join(': ');
}

/** Quotes a user's value for a message, cut short so a pasted blob cannot flood the log. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
}
