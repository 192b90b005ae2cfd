// Loaded with --require: prints each package (bare specifier) the process requires, one per line
// on stderr, so a test can see what the CLI's hot path loads.
const Module = require('module');
const load = Module._load;
const seen = new Set();
Module._load = function (request, ...rest) {
  if (!request.startsWith('node:') && !request.startsWith('.') && !request.startsWith('/') && !seen.has(request)) {
    seen.add(request);
    process.stderr.write(`REQUIRE ${request}\n`);
  }
  return load.call(this, request, ...rest);
};
