/**
 * The environment every body inherits from its controller, with its
 * `NAME=value` list built once: a fire lays its order's and its own
 * variables over it. Copying the ~45 inherited variables into new objects
 * three times per spawn, then joining them, made ~15 KB of garbage per exec
 * fire. One per controller, shared by every order: a list per order would
 * hold 10,000 copies of the same variables.
 */
export class LayeredEnv {
  readonly vars: Readonly<Record<string, string>>;
  #names: string[] | undefined;
  #entries: string[] | undefined;

  constructor(vars: Record<string, string>) {
    this.vars = vars;
  }

  /** `NAME=value` for every variable (built once; do not change it). */
  list(): readonly string[] {
    if (this.#names === undefined || this.#entries === undefined) {
      this.#names = Object.keys(this.vars);
      this.#entries = this.#names.map((name) => `${name}=${this.vars[name]}`);
    }
    return this.#entries;
  }

  /** `NAME=value` for every variable, `over` replacing the base's value of any name it has. */
  entries(over: Readonly<Record<string, string>>): string[] {
    this.list();
    const names = this.#names!;
    const out: string[] = [];
    for (let i = 0; i < names.length; i++) if (!Object.hasOwn(over, names[i]!)) out.push(this.#entries![i]!);
    for (const name of Object.keys(over)) out.push(`${name}=${over[name]}`);
    return out;
  }

  /** The whole environment as one object (what child_process takes). */
  merged(over: Readonly<Record<string, string>>): Record<string, string> {
    return { ...this.vars, ...over };
  }
}

const NONE = new LayeredEnv({});

/** `base` with `over` laid on it, as a `NAME=value` list; `over` alone without a base. */
export function envEntries(base: LayeredEnv | undefined, over: Readonly<Record<string, string>>): string[] {
  return (base ?? NONE).entries(over);
}
