"""Pure-torch model layers: lexical features, hash embeddings, CNN encoders, task heads."""
