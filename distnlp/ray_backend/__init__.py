"""The only package that imports Ray: a Ray Train TorchTrainer (V2 API) hosts one replica per
GPU (or N CPU workers with gloo); every replica runs the same `run_worker` as single-process
training. Ray carries start, failure restarts and checkpoint commits; gradients move through
torch.distributed only."""
