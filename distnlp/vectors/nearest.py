"""The nearest kept row of each removed one, by cosine, in chunks (pruning a vectors table)."""
from __future__ import annotations

import numpy as np

from ..progress import progress_bar


def nearest_rows(queries: np.ndarray, keys: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the index of the key row with the highest cosine, and that cosine."""
    import torch

    k = torch.from_numpy(np.ascontiguousarray(keys, dtype=np.float32))
    k = k / k.norm(dim=1, keepdim=True).clamp_min(1e-12)
    best = np.empty(len(queries), dtype=np.int64)
    scores = np.empty(len(queries), dtype=np.float32)
    bar = progress_bar(desc="nearest rows", unit="row", total=len(queries))
    with torch.inference_mode():
        for start in range(0, len(queries), batch_size):
            q = torch.from_numpy(np.ascontiguousarray(queries[start:start + batch_size], dtype=np.float32))
            q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
            s, i = (q @ k.T).max(dim=1)
            best[start:start + len(q)] = i.numpy()
            scores[start:start + len(q)] = s.numpy()
            bar.update(len(q))
    bar.close()
    return best, scores
