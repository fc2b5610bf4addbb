/**
 * Cost of checking a node's read item text before a GetItem answer splices it in as is
 * (isOneJsonObject, a structural scan), against parsing it (JSON.parse), per 1 KB item of two
 * shapes: the bench's (a key and one 1 KB string) and one of many small nested attributes.
 *
 *   npx node scripts/bench-item-text-check.ts [iterations, default 200000]
 */
import { isOneJsonObject } from '../packages/proto/src/partition-codec.ts';

const iterations = Number(process.argv[2] ?? 200_000);
const shapes: Record<string, unknown> = {
  'key + 1 KB string': { pk: { S: 'k9999' }, payload: { S: 'x'.repeat(1_000) } },
  'many attributes': Object.fromEntries(
    Array.from({ length: 24 }, (_, i) => [`attribute${i}`, i % 3 === 0 ? { M: { n: { N: String(i * 1.5) }, s: { S: `va"lue ${i}` } } } : { S: `value number ${i}` }]),
  ),
};

function perItemNs(check: (text: string) => unknown, text: string): number {
  let kept = 0;
  for (let i = 0; i < 20_000; i++) if (check(text)) kept++; // warm-up
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) if (check(text)) kept++;
  const elapsed = Number(process.hrtime.bigint() - started);
  if (kept === 0) throw new Error('nothing checked');
  return elapsed / iterations;
}

for (const [shape, item] of Object.entries(shapes)) {
  const text = JSON.stringify(item);
  const scan = perItemNs(isOneJsonObject, text);
  const parse = perItemNs((json) => JSON.parse(json), text);
  console.log(`${shape} (${text.length} chars): isOneJsonObject ${(scan / 1000).toFixed(3)} µs, JSON.parse ${(parse / 1000).toFixed(3)} µs`);
}
