// Prometheus's relabel_config actions: part of the CoderMetrics API (the CRD's
// enum) and the exporter's rule engine alike, so it lives with the API, which
// imports nothing at run time.
export const RELABEL_ACTIONS = [
  "replace",
  "keep",
  "drop",
  "keepequal",
  "dropequal",
  "hashmod",
  "labelmap",
  "labeldrop",
  "labelkeep",
  "lowercase",
  "uppercase",
] as const;
export type RelabelAction = (typeof RELABEL_ACTIONS)[number];
