#!/usr/bin/env node
// A `solc`-compatible front for the npm solc package (solcjs), for py-solc-x.
// Stock `solcjs --standard-json` prints a banner line before the JSON, which
// py-solc-x cannot parse, and it has no import callback; this answers only
// `--version` and `--standard-json` (other flags are ignored) and resolves
// imports from the project root and its node_modules.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const solc = require(path.join(root, 'node_modules', 'solc'));
const args = process.argv.slice(2);

if (args.includes('--version')) {
  // Same shape as native solc, so py-solc-x's version regex matches.
  process.stdout.write('solc, the solidity compiler commandline interface\nVersion: ' + solc.version() + '\n');
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write('solc-adapter: only --version and --standard-json are supported\n');
  process.exit(2);
}

function findImports(importPath) {
  const candidates = [path.join(root, importPath), path.join(root, 'node_modules', importPath)];
  for (const candidate of candidates) {
    // Never read outside the project tree.
    if (!candidate.startsWith(root + path.sep)) continue;
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, 'utf8') };
  }
  return { error: 'File not found: ' + importPath };
}

const input = fs.readFileSync(0, 'utf8');
process.stdout.write(solc.compile(input, { import: findImports }));
