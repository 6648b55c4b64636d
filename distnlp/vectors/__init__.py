"""Static word vectors: the table (`Vectors`), the protocol every table meets (`VectorsLike`),
and `init_vectors`, which converts word2vec/GloVe/fastText/numpy tables into a vectors directory."""
from .load import init_vectors, read_vectors
from .table import KEY_ATTRS, Vectors, VectorsLike, load_vectors

__all__ = ["KEY_ATTRS", "Vectors", "VectorsLike", "init_vectors", "load_vectors", "read_vectors"]
