/**
 * An order's environment as it is for every fire, with its `NAME=value`
 * list built once: a fire lays its own few variables over it. Copying the
 * ~45 variables into new objects three times per spawn, then joining them,
 * was most of the garbage an exec fire made (~30 KB), which is what grew
 * the heap of a controller firing 10,000 orders at once.
 */
export class LayeredEnv {
  readonly vars: Readonly<Record<string, string>>;
  #names: string[] | undefined;
  #entries: string[] | undefined;

  constructor(vars: Record<string, string>) {
    this.vars = vars;
  }

  /** `NAME=value` for every variable, `over` replacing the base's value of any name it has. */
  entries(over: Readonly<Record<string, string>>): string[] {
    if (this.#names === undefined || this.#entries === undefined) {
      this.#names = Object.keys(this.vars);
      this.#entries = this.#names.map((name) => `${name}=${this.vars[name]}`);
    }
    const names = this.#names;
    const out: string[] = [];
    for (let i = 0; i < names.length; i++) if (!Object.hasOwn(over, names[i]!)) out.push(this.#entries[i]!);
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
