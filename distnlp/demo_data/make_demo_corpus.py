"""Re-create the demo corpus from UD English-EWT and UniversalNER English-EWT (see README.md).

    python distnlp/demo_data/make_demo_corpus.py UD_EWT_DIR UNER_EWT_DIR OUT_DIR

UD_EWT_DIR holds en_ewt-ud-{train,dev}.conllu (UD 2.16); UNER_EWT_DIR holds the final
en_ewt-ud-dev.iob2 and the draft draft-0c7ce0d/en_ewt-ud-train.iob2. OUT_DIR gets
demo-{train,dev}.conllu and .iob2 (whole documents, every line copied verbatim; the UNER blocks of
exactly those sentences, in the CoNLL-U order) and the converted corpora train/ and dev/.
Only train/, dev/ and the dev files are shipped; the train files are 18 MB of text.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from distnlp.cli.convert import main as convert

# Every TRAIN_EVERY-th document of the train file (all: half of them trained a clearly weaker NER),
# every DEV_EVERY-th of the dev file, counted from the first: an even sample of all five genres
# (weblogs, newsgroups, emails, reviews, answers), whole documents, long ones included (they
# hold most of the entities).
TRAIN_EVERY = 1
DEV_EVERY = 3


def documents(conllu: Path) -> Iterator[list[str]]:
    """The file's documents (split at `# newdoc`), each as its lines."""
    doc: list[str] = []
    for line in conllu.read_text(encoding="utf8").splitlines(keepends=True):
        if line.startswith("# newdoc") and doc:
            yield doc
            doc = []
        doc.append(line)
    if doc:
        yield doc


def uner_blocks(iob2: Path) -> dict[str, str]:
    """sent_id -> that sentence's UNER block (comments and token lines), verbatim."""
    blocks: dict[str, str] = {}
    for block in iob2.read_text(encoding="utf8").split("\n\n"):
        lines = block.strip("\n").splitlines()
        sent_id = next((l.split("=", 1)[1].strip() for l in lines if l.startswith("# sent_id")), None)
        if sent_id is not None:
            blocks[sent_id] = "\n".join(lines) + "\n"
    return blocks


def cut(conllu: Path, iob2: Path, every: int, out_conllu: Path, out_iob2: Path) -> None:
    blocks = uner_blocks(iob2)
    kept = [doc for i, doc in enumerate(documents(conllu)) if i % every == 0]
    out_conllu.write_text("".join("".join(doc) for doc in kept), encoding="utf8")
    sent_ids = [l.split("=", 1)[1].strip() for doc in kept for l in doc if l.startswith("# sent_id")]
    # A sentence UNER lacks is left out here; `convert --skip-invalid` keeps it with missing entities.
    out_iob2.write_text("".join(blocks[s] + "\n" for s in sent_ids if s in blocks), encoding="utf8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ud_dir", type=Path)
    parser.add_argument("uner_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    cut(args.ud_dir / "en_ewt-ud-train.conllu", args.uner_dir / "draft-0c7ce0d" / "en_ewt-ud-train.iob2", TRAIN_EVERY,
        out / "demo-train.conllu", out / "demo-train.iob2")
    cut(args.ud_dir / "en_ewt-ud-dev.conllu", args.uner_dir / "en_ewt-ud-dev.iob2", DEV_EVERY, out / "demo-dev.conllu", out / "demo-dev.iob2")
    os.chdir(out)  # meta.json names its sources relative to OUT_DIR
    for split, extra in (("train", ["--skip-invalid"]), ("dev", [])):
        code = convert([f"demo-{split}.conllu", split, "--ner", f"demo-{split}.iob2", "--overwrite", *extra])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
