// Run at install time by node-gyp-build (package.json "prebuild.test", through the "install"
// script) in the package directory: a throw here makes node-gyp-build build from source instead.
// It passes when the addon node-gyp-build finds (a prebuilt one, or a build) loads on this
// system and the clawjail-init beside it is executable — the pair src/native.ts will use.
'use strict';
const { accessSync, constants } = require('node:fs');
const { dirname, join } = require('node:path');

const addon = require('node-gyp-build').resolve(process.cwd());
const loaded = require(addon);
if (typeof loaded.probe !== 'function') throw new Error(`${addon} is not clawjail's addon (no probe())`);
accessSync(join(dirname(addon), 'clawjail-init'), constants.X_OK);
