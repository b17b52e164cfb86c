"""Rails: the networks that move money between our ledger and real bank accounts.

Every rail sits behind one interface, `base.Rail`, so the worker that pays out and takes
money in never knows which network it talks to. The interface is shaped by the hard parts
every rail shares: an answer can be lost (`RailTimeout`), so a payout id is the idempotency
key and the worker asks `status(key)` before submitting again; notices repeat and arrive out
of order, so callbacks are hints and polling is the truth; money arriving is redelivered
until acknowledged, so nothing is lost when a process dies between receiving and applying.

- `simulated.SimulatedRail` is the default and the one every test uses: a durable,
  multi-process journal on disk with deterministic outcomes, latency and injected faults,
  and `simulated.SimulatedBank`, the bank's side of it, for tests and the chaos harness.
- `settlement_file.FileRail` answers the same interface from daily CSV files, to show that
  batch rails fit it too.
- `reconcile` compares a rail's settlement report with what the ledger believes, purely.

No rail ever sees a full bank account number: a payout carries the last four digits and a
fingerprint only.
"""
