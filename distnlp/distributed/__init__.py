"""torch.distributed only: process groups, the weighted gradient all-reduce, barriers and the
checkpoint commit protocol. No Ray here (docs/architecture.md, "Layers")."""
