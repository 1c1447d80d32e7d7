// metav1.MicroTime: RFC 3339 with microseconds, as Events and Leases want it
// (the API server refuses a plain millisecond timestamp there).
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}
