// Compiles one generated halo2 verifier (Solidity from snark-verifier) with the pinned solc-js,
// optimizer off (with it on the verifier fails with "stack too deep"), and prints its creation
// bytecode as hex on stdout:
//   node chain/scripts/compile-verifier.mjs Verifier.sol
// solc is loaded from $CONCLAVE_TOOLS/node_modules (default: <repo>/.tools).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SOLC_VERSION = "0.8.30";
const here = dirname(fileURLToPath(import.meta.url));
const tools = process.env.CONCLAVE_TOOLS ?? resolve(here, "..", "..", ".tools");
const require = createRequire(join(tools, "package.json"));
let solc;
try {
  solc = require("solc");
} catch (e) {
  console.error(`compile-verifier.mjs: solc-js not found under ${tools}/node_modules (chain/scripts/install-tools installs it)`);
  process.exit(2);
}
if (!solc.version().startsWith(SOLC_VERSION + "+")) {
  console.error(`compile-verifier.mjs: solc ${solc.version()} found, ${SOLC_VERSION} required`);
  process.exit(2);
}
const input = {
  language: "Solidity",
  sources: { "Verifier.sol": { content: readFileSync(process.argv[2], "utf8") } },
  settings: {
    optimizer: { enabled: false },
    evmVersion: "shanghai",
    viaIR: false,
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { "*": ["evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
for (const e of errors) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);
const contracts = Object.values(output.contracts["Verifier.sol"] ?? {});
if (contracts.length !== 1) {
  console.error(`compile-verifier.mjs: expected one contract, found ${contracts.length}`);
  process.exit(1);
}
process.stdout.write(contracts[0].evm.bytecode.object + "\n");
