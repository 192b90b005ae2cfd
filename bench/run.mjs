// `npm run bench`: every benchmark, with ratios against the peers measured in the same run.
// BENCH_ONLY=launch,seccomp runs a subset.
const ALL = ['launch', 'seccomp', 'egress', 'inference', 'tenants', 'openclaw'];
const only = process.env.BENCH_ONLY ? process.env.BENCH_ONLY.split(',') : ALL;

const fmt = (v) => (typeof v === 'number' ? (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3)) : String(v ?? ''));

let failed = 0;
for (const name of only) {
  let result;
  try {
    const mod = await import(`./${name}.mjs`);
    result = await mod.bench();
  } catch (e) {
    failed++;
    console.log(`\n## ${name}: FAILED — ${e?.message ?? e}`);
    continue;
  }
  console.log(`\n## ${result.title ?? name}`);
  for (const r of result.rows) {
    const ratio = r.ratio !== undefined ? `  ratio ${r.ratio.toFixed(2)}x` : '';
    const target = r.target ? `  (target ${r.target})` : '';
    const note = r.note ? `  — ${r.note}` : '';
    console.log(`${r.metric.padEnd(58)} ${fmt(r.value).padStart(10)} ${r.unit ?? ''}${ratio}${target}${note}`);
  }
}
process.exitCode = failed ? 1 : 0;
