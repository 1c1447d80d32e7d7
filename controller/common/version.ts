import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
// package.json sits three levels up from dist/controller/common/ and two up from controller/common/.
function readVersion(): string {
  for (const path of ["../../package.json", "../../../package.json"]) {
    try {
      return (require(path) as { version: string }).version;
    } catch {}
  }
  return "0.0.0-unknown";
}

export const version: string = readVersion();
