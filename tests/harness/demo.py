"""Modelship's demo on this machine (the README's first command).

    scripts/demo.sh [--keep]

Starts the local control plane and the development node, installs the CRDs
and runs the operator; pre-trains a breast-cancer classifier and three
ensemble members; applies examples/demo/; lets a fine-tuning Job train
version 2 on the rest of the data and promote it through the gate; answers
inference through tritonclient over HTTP and gRPC, printing predictions next
to the true labels; shows `kubectl get modelship` and what Prometheus
scraped. Everything stops at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import numpy as np

from tests.harness import scenario as s


def run_demo(keep: bool) -> int:
    started = time.monotonic()
    with s.environment() as env:
        s.prepare_models(env)
        s.apply_examples(env)

        s.say("==> Waiting for every model to be served (kubectl wait --for=condition=Ready)")
        for name in ("breast-cancer", *s.MEMBERS):
            s.wait_ready(env, "md", name)
        s.wait_ready(env, "me", "bc-vote")

        md = s.wait_for_promotion(env, "breast-cancer")
        split = s.held_out_split(md)
        address = env.node.service_address(s.NAMESPACE, "breast-cancer-predictor")

        s.say(f"==> Inference over HTTP (tritonclient.http) at {address}:8000, "
              f"version {md['status'].get('servingVersion')}")
        http = s.infer_http(address, "breast-cancer", split.features)
        s.show_predictions(split.labels, http["label"])
        s.say(f"==> Inference over gRPC (tritonclient.grpc) at {address}:8001")
        grpc = s.infer_grpc(address, "breast-cancer", split.features)
        same = bool(np.array_equal(http["label"], grpc["label"]))
        s.say(f"    gRPC answers the same labels as HTTP: {same}")

        router = env.node.service_address(s.NAMESPACE, "bc-vote-ensemble")
        s.say(f"==> The voting ensemble bc-vote (router at {router}:8000)")
        votes = s.infer_http(router, "bc-vote", split.features)
        label = next(k for k in votes if "label" in k)
        s.show_predictions(split.labels, votes[label])

        s.say("==> kubectl get modelship -n modelship-demo")
        for line in env.kubectl("get", "modelship", "-n", s.NAMESPACE).stdout.splitlines():
            s.say(f"    {line}")

        targets = {name: f"{env.node.service_address(s.NAMESPACE, f'{name}-predictor')}:8002"
                   for name in ("breast-cancer", *s.MEMBERS)}
        targets["bc-vote"] = f"{router}:8002"
        url = s.start_prometheus(env, targets)
        s.say(f"==> Prometheus at {url} scrapes every server; after a little more traffic:")
        # Drift is scored once the server's window holds 200 rows: send every
        # row of the dataset once, in-distribution traffic (few distinct rows
        # sent over and over would read as drift).
        from sklearn.datasets import load_breast_cancer

        every_row = load_breast_cancer().data.astype(np.float32)
        s.infer_http(address, "breast-cancer", every_row)
        time.sleep(3)
        for query in ('sum by (job) (nv_inference_count)',
                      'sum by (job) (nv_inference_request_success)',
                      'max by (job) (modelship_drift_score)'):
            s.wait_for(lambda q=query: s.prometheus_query(url, q), f"{query} in Prometheus",
                       timeout=60)
            s.say(f"    {query}")
            for series in s.prometheus_query(url, query):
                s.say(f"      {series['metric'].get('job', '?'):14s} {series['value'][1]}")
        s.say("    (the drift score is the largest population stability index over every "
              "feature and output,\n     against reference statistics of a 55-row validation "
              "split: a reference that small reads\n     noisy even for in-distribution "
              "traffic; the alert threshold is spec.monitoring.driftThreshold)")

        s.say(f"\nDone in {time.monotonic() - started:.0f}s.")
        if keep:
            s.say(f"\nThe environment stays up. In another shell:\n"
                  f"  export KUBECONFIG={env.plane.kubeconfig}\n"
                  f"  export PATH={env.plane.bin_dir}:$PATH\n"
                  f"  kubectl get modelship -n {s.NAMESPACE}")
            s.say("Services, as the development node serves them to this machine "
                  "(HTTP :8000, gRPC :8001, metrics :8002):")
            for name in ("breast-cancer", *s.MEMBERS):
                service = f"{name}-predictor"
                s.say(f"  {service:26s} {env.node.service_address(s.NAMESPACE, service)}")
            s.say(f"  {'bc-vote-ensemble':26s} {router}")
            s.say(f"Logs (kubectl logs needs a kubelet, which this machine has not):\n"
                  f"  pods:     {env.node.root / 'logs'}\n"
                  f"  operator: {env.operator_log}\n"
                  f"  Prometheus: {url}\n"
                  f"Press Ctrl-C here to stop everything.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        s.say("==> Stopping everything")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo.sh", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true",
                        help="leave the environment running for exploring (Ctrl-C stops it)")
    args = parser.parse_args(argv)
    # SIGTERM stops everything the same way Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run_demo(args.keep)


if __name__ == "__main__":
    sys.exit(main())
