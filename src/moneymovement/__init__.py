"""moneymovement: a gRPC money-movement service on a double-entry ledger."""
