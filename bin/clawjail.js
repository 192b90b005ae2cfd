#!/usr/bin/env node
// The bundled CLI loads fewer files at start-up; the plain build is the fallback.
let cli;
try {
  cli = await import('../dist/bundle/cli.js');
} catch (e) {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND') throw e;
  cli = await import('../dist/cli.js');
}
cli.main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
