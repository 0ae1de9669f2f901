// Validate GLB files with Khronos glTF-Validator; print one JSON line per file: {file, numErrors, numWarnings, messages}.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const validator = require("gltf-validator");

for (const file of process.argv.slice(2)) {
  const bytes = new Uint8Array(await readFile(file));
  const report = await validator.validateBytes(bytes, { maxIssues: 100 });
  const { numErrors, numWarnings, numInfos, messages } = report.issues;
  console.log(JSON.stringify({ file, numErrors, numWarnings, numInfos, messages,
                               extensionsUsed: report.info?.extensionsUsed ?? [] }));
}
