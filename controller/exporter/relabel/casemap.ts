// Go's strings.ToLower / strings.ToUpper, which the relabel actions lowercase
// and uppercase call: Unicode *simple* case mapping, one code point to one
// code point, with Go's Unicode tables. JavaScript's toLowerCase/toUpperCase
// use the *full* mapping (ß → SS, İ → i̇, final sigma) and Node's newer
// Unicode version, so each code point is mapped on its own and the code
// points where that still differs from Go are listed below. The unit test
// compares every code point with Go itself (promref casemap), so a Node or Go
// upgrade that moves a mapping fails there, not in production.

/**
 * Code points Go maps differently from a one-character JS toLowerCase:
 * "cp" = Go leaves it alone, "cp:to" = Go maps it to `to` (hex).
 */
const LOWER =
  "130:69 1c89 a7cb a7cc a7ce a7d2 a7d4 a7da a7dc 10d50 10d51 10d52 10d53 10d54 10d55 10d56 " +
  "10d57 10d58 10d59 10d5a 10d5b 10d5c 10d5d 10d5e 10d5f 10d60 10d61 10d62 10d63 10d64 10d65 " +
  "16ea0 16ea1 16ea2 16ea3 16ea4 16ea5 16ea6 16ea7 16ea8 16ea9 16eaa 16eab 16eac 16ead 16eae " +
  "16eaf 16eb0 16eb1 16eb2 16eb3 16eb4 16eb5 16eb6 16eb7 16eb8";

/** The same for toUpperCase. */
const UPPER =
  "df 149 19b 1f0 264 390 3b0 587 1c8a 1e96 1e97 1e98 1e99 1e9a 1f50 1f52 1f54 1f56 " +
  "1f80:1f88 1f81:1f89 1f82:1f8a 1f83:1f8b 1f84:1f8c 1f85:1f8d 1f86:1f8e 1f87:1f8f 1f88 1f89 " +
  "1f8a 1f8b 1f8c 1f8d 1f8e 1f8f 1f90:1f98 1f91:1f99 1f92:1f9a 1f93:1f9b 1f94:1f9c 1f95:1f9d " +
  "1f96:1f9e 1f97:1f9f 1f98 1f99 1f9a 1f9b 1f9c 1f9d 1f9e 1f9f 1fa0:1fa8 1fa1:1fa9 1fa2:1faa " +
  "1fa3:1fab 1fa4:1fac 1fa5:1fad 1fa6:1fae 1fa7:1faf 1fa8 1fa9 1faa 1fab 1fac 1fad 1fae 1faf " +
  "1fb2 1fb3:1fbc 1fb4 1fb6 1fb7 1fbc 1fc2 1fc3:1fcc 1fc4 1fc6 1fc7 1fcc 1fd2 1fd3 1fd6 1fd7 " +
  "1fe2 1fe3 1fe4 1fe6 1fe7 1ff2 1ff3:1ffc 1ff4 1ff6 1ff7 1ffc a7cd a7cf a7d3 a7d5 a7db fb00 " +
  "fb01 fb02 fb03 fb04 fb05 fb06 fb13 fb14 fb15 fb16 fb17 10d70 10d71 10d72 10d73 10d74 " +
  "10d75 10d76 10d77 10d78 10d79 10d7a 10d7b 10d7c 10d7d 10d7e 10d7f 10d80 10d81 10d82 10d83 " +
  "10d84 10d85 16ebb 16ebc 16ebd 16ebe 16ebf 16ec0 16ec1 16ec2 16ec3 16ec4 16ec5 16ec6 16ec7 " +
  "16ec8 16ec9 16eca 16ecb 16ecc 16ecd 16ece 16ecf 16ed0 16ed1 16ed2 16ed3";

function table(spec: string): Map<number, number> {
  const m = new Map<number, number>();
  for (const item of spec.split(" ")) {
    const [from, to] = item.split(":");
    const cp = Number.parseInt(from!, 16);
    m.set(cp, to === undefined ? cp : Number.parseInt(to, 16));
  }
  return m;
}

let lower: Map<number, number> | undefined;
let upper: Map<number, number> | undefined;

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 127) return false;
  return true;
}

function mapEach(s: string, exceptions: Map<number, number>, full: (c: string) => string): string {
  let out = "";
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    const ex = exceptions.get(cp);
    if (ex !== undefined) {
      out += String.fromCodePoint(ex);
      continue;
    }
    const m = full(ch);
    // A multi-character full mapping has no simple one: Go keeps the character.
    out += m.length === ch.length || [...m].length === 1 ? m : ch;
  }
  return out;
}

/** strings.ToLower. */
export function goToLower(s: string): string {
  if (isAscii(s)) return s.toLowerCase();
  lower ??= table(LOWER);
  return mapEach(s, lower, (c) => c.toLowerCase());
}

/** strings.ToUpper. */
export function goToUpper(s: string): string {
  if (isAscii(s)) return s.toUpperCase();
  upper ??= table(UPPER);
  return mapEach(s, upper, (c) => c.toUpperCase());
}
