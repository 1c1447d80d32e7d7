// Strings sliced out of a scraped payload keep the whole payload alive.
/**
 * A copy of `s` that does not keep a larger string alive. Strings sliced out of
 * a scraped payload reference the whole payload; long-lived caches must not
 * hold those, or every cached key would pin a multi-megabyte scrape.
 */
export function detach(s: string): string {
  return s.length < 13 ? s : ` ${s}`.slice(1);
}
