"""Pipelines: a shared embedding, task components listening to it, save/load and inference.

Pure torch: nothing here imports torch.distributed, Ray, Hydra or OmegaConf (DESIGN.md, layers).
"""
