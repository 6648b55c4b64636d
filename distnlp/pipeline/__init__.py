"""Pipelines: a shared embedding, task components listening to it, save/load and inference.

Pure torch: nothing here imports collectives (the distributed package), Ray, Hydra or OmegaConf (docs/architecture.md, "Layers").
"""
