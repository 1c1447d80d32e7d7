// resource.Quantity as the API server reads it (k8s.io/apimachinery's
// ParseQuantity grammar), reduced to an exact number so that two spellings of
// one amount compare equal: the API server stores `cpu: 0.5` as "500m" and
// `memory: 1024Mi` as "1Gi", and a comparison of strings would re-apply them
// on every resync.
//   <quantity> ::= <signedNumber><suffix>
//   <suffix>   ::= Ki | Mi | Gi | Ti | Pi | Ei            (powers of 2^10)
//                | n | u | m | "" | k | M | G | T | P | E (powers of 10^3)
//                | e<signedNumber> | E<signedNumber>      (powers of 10)
// Amounts finer than a nano-unit are rounded up to one, as the API server does.

const binary: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const decimal: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  "": 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};
const grammar = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:([KMGTPE]i)|([numkMGTPE])|[eE]([+-]?\d+))?$/;

/** The amount in nano-units (exactly), or undefined when it is not a quantity. */
export function quantityNanos(value: unknown): bigint | undefined {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return undefined;
    value = String(value);
  }
  if (typeof value !== "string") return undefined;
  const m = grammar.exec(value.trim());
  if (m === null) return undefined;
  const [, sign, number = "", binarySuffix, decimalSuffix, exponent] = m;
  const [whole = "", fraction = ""] = number.split(".");
  let digits = BigInt(`${whole}${fraction}` || "0");
  let power10 = 9 - fraction.length; // nano-units
  if (binarySuffix !== undefined) digits *= 1024n ** BigInt(binary[binarySuffix] ?? 0);
  else if (exponent !== undefined) {
    const e = Number(exponent);
    if (Math.abs(e) > 100) return undefined; // not a resource amount; spare the bigint
    power10 += e;
  } else power10 += decimal[decimalSuffix ?? ""] ?? 0;
  let nanos: bigint;
  if (power10 >= 0) nanos = digits * 10n ** BigInt(power10);
  else {
    const divisor = 10n ** BigInt(-power10);
    nanos = digits / divisor + (digits % divisor === 0n ? 0n : 1n); // round up
  }
  return sign === "-" ? -nanos : nanos;
}

/** Whether two values are the same quantity (both must parse). */
export function sameQuantity(a: unknown, b: unknown): boolean {
  const x = quantityNanos(a);
  return x !== undefined && x === quantityNanos(b);
}
