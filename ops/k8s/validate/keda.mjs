// Validates every ScaledObject in the given YAML files against KEDA's schema
// (@kubernetes-models/keda): at run time (required fields, types, patterns) and through
// TypeScript, whose excess-property checks reject any field the schema does not know.
// Exits 1 naming the file and the problem. Usage: node keda.mjs file.yaml...
import { readFileSync, writeFileSync, rmSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";
import { parseAllDocuments } from "yaml";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1";

const here = dirname(fileURLToPath(import.meta.url));
let failed = false;
const typed = [];
for (const file of process.argv.slice(2)) {
  for (const [i, doc] of parseAllDocuments(readFileSync(file, "utf8")).entries()) {
    if (doc.errors.length) {
      console.error(`ERROR ${file} document ${i}: ${doc.errors[0].message}`);
      failed = true;
      continue;
    }
    const obj = doc.toJS();
    if (!obj) continue;
    if (obj.apiVersion !== "keda.sh/v1alpha1" || obj.kind !== "ScaledObject") {
      console.error(`ERROR ${file} document ${i}: ${obj.apiVersion} ${obj.kind} is not a KEDA ScaledObject`);
      failed = true;
      continue;
    }
    try {
      new ScaledObject(obj).validate();
      typed.push({ file, i, obj });
    } catch (e) {
      console.error(`ERROR ${file} ScaledObject/${obj.metadata?.name}: ${e.message}`);
      failed = true;
    }
  }
}
if (typed.length) {
  const lines = [`import type { IScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";`];
  typed.forEach(({ obj }, n) => lines.push(`export const d${n}: IScaledObject = ${JSON.stringify(obj, null, 1)};`));
  // Beside node_modules, so the types resolve.
  const source = join(here, `.check-${process.pid}.ts`);
  writeFileSync(source, lines.join("\n") + "\n");
  try {
    execFileSync(process.execPath, [join(here, "node_modules/typescript/bin/tsc"), "--noEmit", "--strict",
      "--skipLibCheck", "--moduleResolution", "bundler", "--module", "esnext", "--target", "es2020", source],
      { stdio: "pipe" });
  } catch (e) {
    console.error(`ERROR ${typed.map((t) => t.file).join(", ")}: fields KEDA's ScaledObject does not have:\n${e.stdout}`);
    failed = true;
  } finally {
    rmSync(source, { force: true });
  }
}
for (const { file, obj } of typed) if (!failed) console.log(`INFO ${file} passed for ScaledObject/${obj.metadata.name}`);
process.exit(failed ? 1 : 0);
