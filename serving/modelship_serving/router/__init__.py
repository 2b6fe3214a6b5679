"""The ensemble router: one ModelEnsemble served as one model over the server's transports.

Layers, lowest first: `config` (the file the operator writes), `compat` (pure:
member metadata in, the ensemble's plan or the reasons it cannot exist out),
`combine` (numpy: voting, averages, concatenation), `members` (tritonclient
calls with timeouts and retries), `strategies` (one request through the
plan), `watch` (readiness from the members), `core` (the `Backend` that the
HTTP and gRPC adapters of `modelship_serving.server` serve) and `main`.
"""
