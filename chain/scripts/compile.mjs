// Compiles chain/contracts with the pinned solc-js and writes one artifact per contract:
//   node chain/scripts/compile.mjs [--out DIR]      (default: chain/artifacts)
// solc is loaded from $CONCLAVE_TOOLS/node_modules (default: <repo>/.tools), where the README's
// test command installs it. The artifacts are committed; Rust builds read them and never run Node.
import { createRequire } from "node:module";
import { readFileSync, readdirSync, mkdirSync, writeFileSync, statSync } from "node:fs";
import { join, dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SOLC_VERSION = "0.8.30";
const here = dirname(fileURLToPath(import.meta.url));
const chainDir = resolve(here, "..");
const sourcesDir = join(chainDir, "contracts");
const tools = process.env.CONCLAVE_TOOLS ?? resolve(chainDir, "..", ".tools");

const outArg = process.argv.indexOf("--out");
const outDir = outArg >= 0 ? resolve(process.argv[outArg + 1]) : join(chainDir, "artifacts");

const require = createRequire(join(tools, "package.json"));
let solc;
try {
  solc = require("solc");
} catch (e) {
  console.error(`compile.mjs: solc-js not found under ${tools}/node_modules; run scripts/test once (it installs it)`);
  process.exit(2);
}
const version = solc.version();
if (!version.startsWith(SOLC_VERSION + "+")) {
  console.error(`compile.mjs: solc ${version} found, ${SOLC_VERSION} required`);
  process.exit(2);
}

function sourceFiles(dir) {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return sourceFiles(path);
      return name.endsWith(".sol") ? [path] : [];
    });
}

const sources = {};
for (const path of sourceFiles(sourcesDir)) {
  sources[relative(sourcesDir, path)] = { content: readFileSync(path, "utf8") };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "shanghai",
    viaIR: false,
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
for (const e of output.errors ?? []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

mkdirSync(outDir, { recursive: true });
let count = 0;
for (const file of Object.keys(output.contracts).sort()) {
  for (const [name, contract] of Object.entries(output.contracts[file])) {
    const bytecode = contract.evm.bytecode.object;
    if (bytecode.length === 0 || contract.abi.length === 0) continue; // interfaces, internal libraries
    const artifact = {
      contractName: name,
      sourceName: file,
      compiler: version,
      abi: contract.abi,
      bytecode: "0x" + bytecode,
      deployedBytecode: "0x" + contract.evm.deployedBytecode.object,
    };
    writeFileSync(join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
    count += 1;
  }
}
console.error(`compile.mjs: ${count} artifacts from ${Object.keys(sources).length} sources with solc ${version} -> ${outDir}`);
