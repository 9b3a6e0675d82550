#!/usr/bin/env node
// A `solc` command line in front of npm's solcjs (the real compiler as WebAssembly), for
// py-solc-x: `--version` and `--standard-json` (input on stdin, output on stdout). Imports
// resolve against the working directory and node_modules (for @openzeppelin/...).
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const args = process.argv.slice(2);
const roots = [process.cwd(), path.resolve(__dirname, "..", ".."), path.resolve(__dirname, "..", "..", "node_modules")];

function findImports(name) {
  for (const root of roots) {
    const candidate = path.resolve(root, name);
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
  }
  return { error: `not found: ${name}` };
}

function finish(text, code) {
  // Exit only once the pipe has taken everything (a plain exit truncates at 64 KiB).
  process.stdout.write(text, () => process.exit(code));
}

if (args.includes("--version")) {
  finish(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`, 0);
} else if (args.includes("--standard-json")) {
  const chunks = [];
  process.stdin.on("data", (c) => chunks.push(c));
  process.stdin.on("end", () => {
    const output = solc.compile(Buffer.concat(chunks).toString("utf8"), { import: findImports });
    finish(output, 0);
  });
} else {
  process.stderr.write("jamnet solc wrapper: only --version and --standard-json are supported\n");
  process.exit(2);
}
