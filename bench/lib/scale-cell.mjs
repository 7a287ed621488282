// One scale cell in its own process: `node scale-cell.mjs '<json options>'`
// prints the cell's result as one JSON line on stdout (progress on stderr).
import { loadOrderlyDist } from './orderly.mjs';
import { scaleCell } from './scale.mjs';

const options = JSON.parse(process.argv[2] ?? '{}');
const lib = await loadOrderlyDist({ log: () => undefined });
const result = await scaleCell(lib, { ...options, log: (...a) => console.error(...a) });
process.stdout.write(`${JSON.stringify(result)}\n`);
