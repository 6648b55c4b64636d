"""What keys each config section may have, and their types.

A spec is a Python type, a tuple of types (None allowed as a type), ANY, REF (a registered
callable: a mapping with `_use_`), SCHEDULE (a number or a REF), or a nested dict spec.
Sections whose keys are free (component names, score weights) are handled in validate.py.
"""
from __future__ import annotations

from typing import Any

ANY = object()
REF = object()
SCHEDULE = object()
NUMBER = (int, float)

NLP = {"lang": str, "pipeline": list}
INITIALIZE = {"vectors": (str, dict, type(None)), "init_tok2vec": (str, type(None))}

ENCODER_COMMON: dict[str, Any] = {"factory": str, "width": int, "model": REF}

CORPUS = {
    "train": (str, list, type(None)),  # one path, or a list of corpora (config/corpora.py checks the entries)
    "temperature": NUMBER,  # several corpora without weights: p_i ~ docs_i ** temperature
    "dev": (str, type(None)),
    "raw_text": (str, type(None)),
    "shuffle": bool,
    "shuffle_words": int,
    "min_length": int,
    "max_length": int,
    "split_length": int,
}

OPTIMIZER = {
    "algorithm": str,
    "learn_rate": SCHEDULE,
    "beta1": NUMBER,
    "beta2": NUMBER,
    "eps": NUMBER,
    "weight_decay": NUMBER,
    "grad_clip": NUMBER,
    "use_averages": bool,
    "encoder_lr_factor": NUMBER,
}

TRAINING = {
    "output_dir": str,
    "max_steps": int,
    "max_epochs": int,
    "eval_frequency": int,
    "patience": int,
    "dropout": (int, float, type(None)),
    "accumulate_gradient": int,
    "score_weights": (dict, type(None)),
    "max_eval_docs": int,
    "log_every": int,
    "curves": bool,
    "checkpoints_to_keep": int,
    "resume": bool,
    "overwrite": bool,
    "nonfinite": str,
    "prefetch": bool,
    "loggers": (list, type(None)),
    "optimizer": OPTIMIZER,
    "batcher": REF,
}

DISTRIBUTED_SINGLE = {
    "backend": str,
    "num_workers": (int, str),  # N, or MIN..MAX with Ray (checked by DistributedSettings)
    "use_gpu": (bool, str),
    "device": str,
    "num_threads": int,
    "fail_at_step": (int, type(None)),
    "reduce_dtype": (str, type(None)),
    "fail_in_checkpoint": bool,
    "keep_global_batch": bool,
}

DISTRIBUTED_RAY = {
    **DISTRIBUTED_SINGLE,
    "address": (str, type(None)),
    "num_cpus": (int, type(None)),
    "resources_per_worker": (dict, type(None)),
    "run_name": str,
    "storage_path": (str, type(None)),
    "max_failures": int,
    "ray_log_level": (str, type(None)),
    "bucket_mb": NUMBER,
    "timeout_s": NUMBER,
    "connect_timeout_s": NUMBER,  # deadline of every connection attempt to Ray (driver.connect)
}

COMPONENT_COMMON: dict[str, Any] = {
    "factory": str,
    "listen": (str, type(None)),
    "grad_factor": SCHEDULE,
    "model": REF,
    "embed": (dict, type(None)),
    "score_weights": dict,
}

# A factory's own keys are declared by its component class (`Component.config_keys`).

PRETRAIN: dict[str, Any] = {
    "objective": (str, dict),
    "objectives": dict,
    "component": str,
    "layer": str,
    "output_dir": str,
    "max_epochs": int,
    "max_steps": int,
    "dropout": (int, float, type(None)),
    "mask_prob": NUMBER,
    "n_save_every": (int, type(None)),
    "n_save_epoch": (int, type(None)),
    "min_length": int,
    "max_length": int,
    "batcher": REF,
    "optimizer": OPTIMIZER,
    "vectors": (str, dict, type(None)),
    "seed": int,
    "log_every": int,
    "checkpoints_to_keep": int,
    "resume": bool,
    "overwrite": bool,
    "nonfinite": str,
    "prefetch": bool,
    "accumulate_gradient": int,
}

TOP_LEVEL: dict[str, Any] = {
    "seed": int,
    "code": (str, type(None)),
    "nlp": NLP,
    "initialize": INITIALIZE,
    "encoder": ANY,  # checked in validate.py (depends on the factory)
    "components": ANY,
    "corpus": CORPUS,
    "training": TRAINING,
    "distributed": ANY,
    "pretrain": PRETRAIN,
}
