"""`distnlp annotate`: run a saved pipeline over raw text or corpora, on one process or Ray actors.

inputs.py plans the work (input rows -> numbered splits) and reads a split; split.py annotates
one split into one output shard; output.py owns the output directory (resume, meta.json,
rejects); run.py drives it on one process, ray_backend/annotate.py on a Ray Data actor pool.
"""
