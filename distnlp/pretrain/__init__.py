"""spaCy-style pretraining of the embedding layer from raw text (`distnlp pretrain`).

objectives: PretrainCharacters / PretrainVectors heads (pure torch), masking as spaCy's LMAO.
text_stream: raw text per rank (JSONL {"text"} or plain lines), cursor-resumable.
loop: `run_pretrain_worker`, the one entry a single process and every Ray replica call.
weights: `load_pretrained_tok2vec`, what `initialize.init_tok2vec` uses.
"""
