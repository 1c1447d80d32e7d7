// The Operator's generated Prometheus config, made runnable out of cluster.
import assert from "node:assert/strict";
import { test } from "node:test";
import { outOfClusterConfig } from "./operator.ts";

test("in-cluster config → kubeconfig discovery, shard 0, no Pod-only files", () => {
  const generated = {
    global: {
      external_labels: { prometheus: "monitoring/kps", prometheus_replica: "$(POD_NAME)" },
    },
    rule_files: ["/etc/prometheus/rules/prometheus-kps-rulefiles-0/*.yaml"],
    alerting: { alertmanagers: [] },
    scrape_configs: [
      {
        job_name: "serviceMonitor/coder/coder-prom/0",
        kubernetes_sd_configs: [{ role: "endpointslice", namespaces: { names: ["coder"] } }],
        authorization: { credentials_file: "/var/run/secrets/kubernetes.io/serviceaccount/token" },
        relabel_configs: [
          {
            source_labels: ["__tmp_hash", "__tmp_disable_sharding"],
            regex: "$(SHARD);|.+;.+",
            action: "keep",
          },
        ],
      },
    ],
  };
  const config = outOfClusterConfig(generated, "/tmp/kubeconfig", "prometheus-kps-0");
  assert.deepEqual(config, {
    global: {
      external_labels: { prometheus: "monitoring/kps", prometheus_replica: "prometheus-kps-0" },
    },
    scrape_configs: [
      {
        job_name: "serviceMonitor/coder/coder-prom/0",
        kubernetes_sd_configs: [
          {
            role: "endpointslice",
            namespaces: { names: ["coder"] },
            kubeconfig_file: "/tmp/kubeconfig",
          },
        ],
        relabel_configs: [
          {
            source_labels: ["__tmp_hash", "__tmp_disable_sharding"],
            regex: "0;|.+;.+",
            action: "keep",
          },
        ],
      },
    ],
  });
  assert.equal(
    generated.global.external_labels.prometheus_replica,
    "$(POD_NAME)",
    "input untouched",
  );
});
