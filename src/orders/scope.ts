import { OrderFileError } from './errors.js';
import { scopedName, type OrderSpec, type ScopedOrder } from './types.js';

/** What a rig may be called: it becomes part of scoped names (`name:rig:<rig>`), lease keys and paths. */
export const RIG_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Binds orders to their scopes: a city order once under its name, a rig
 * order (`scope = "rig"`) once per rig as `name:rig:<rig>`, in input order.
 * Scoped names are the lease keys (G1), so two sources of one scoped name
 * (a file and a code order, or a rig expansion that collides with an order
 * literally named `x:rig:r`) are refused, naming both. With no rigs, rig
 * orders bind to nothing; an order bound to some rigs (`spec.rigs`) binds
 * to those of them in `rigs`.
 */
export function validateScoped(orders: readonly OrderSpec[], rigs: readonly string[]): ScopedOrder[] {
  const seenRigs = new Set<string>();
  for (const rig of rigs) {
    if (typeof rig !== 'string' || !RIG_NAME.test(rig)) {
      throw new OrderFileError({ field: 'rigs', problem: `rig name ${JSON.stringify(rig)} must start with a letter or digit and hold only letters, digits, ".", "_" and "-"` });
    }
    if (seenRigs.has(rig)) throw new OrderFileError({ field: 'rigs', problem: `rig ${JSON.stringify(rig)} is listed twice` });
    seenRigs.add(rig);
  }

  const scoped: ScopedOrder[] = [];
  const owner = new Map<string, OrderSpec>();
  const bind = (spec: OrderSpec, rig?: string): void => {
    const key = scopedName(spec.name, rig);
    const first = owner.get(key);
    if (first !== undefined) {
      throw new OrderFileError({
        file: spec.file,
        order: spec.file === undefined ? spec.name : undefined,
        field: 'name',
        problem: `duplicate order ${JSON.stringify(key)}: defined by ${source(first)} and by ${source(spec)}`,
      });
    }
    owner.set(key, spec);
    scoped.push(rig === undefined ? { scopedName: key, spec } : { scopedName: key, rig, spec });
  };
  for (const spec of orders) {
    // A city binds each rig's orders to that rig; of those, only the rigs this controller runs.
    if (spec.scope === 'rig') for (const rig of spec.rigs ? spec.rigs.filter((r) => seenRigs.has(r)) : rigs) bind(spec, rig);
    else bind(spec);
  }
  return scoped;
}

function source(spec: OrderSpec): string {
  const what = spec.scope === 'rig' ? `rig order ${JSON.stringify(spec.name)}` : `order ${JSON.stringify(spec.name)}`;
  return spec.file === undefined ? `${what} (defined in code)` : `${what} (${spec.file})`;
}
