"""The Pipeline: one shared embedding layer, components listening to it, save/load and inference.

The shared layer runs once per batch; each listening component reads its output through
`scale_grad(H, grad_factor(step))`, so one backward pass carries every head's gradient, each
scaled by its factor (docs/architecture.md, decision 1). When every factor is 0 the shared layer runs
under `no_grad`. A component with `listen: null` owns a private embedding instead.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from .. import registry
from ..data.doc import Doc
from ..data.tokenizer import Tokenizer
from ..errors import CheckpointError, ConfigError
from ..hashed_files import Writer
from ..owned_paths import MARKER, check_replaceable, clean_stale_temps, discard_temp_dir, make_temp_dir, publish_dir
from ..schedules import Schedule, as_schedule
from ..scoring import Scorer
from ..vectors.table import Vectors
from ..version import __version__
from .budget import budgeted_batches
from .components import Component, component_class
from .device import to_device
from .grad_scale import scale_grad
from .integrity import CHECKSUMS, META_FILE, check_finite, check_finite_array, complete_checksums, read_meta, verify_files

log = logging.getLogger(__name__)

SHARED = "encoder"
WEIGHTS_FILE = "model.safetensors"
# Everything Pipeline.to_disk may write (models saved before meta.json listed its files).
MODEL_ENTRIES = frozenset({"config.json", "labels.json", WEIGHTS_FILE, "meta.json", "code.py", "vectors", "transformer"})


@dataclass
class Batch:
    """Featurized docs: inputs for the shared layer and private embeddings, plus targets."""

    docs: list[Doc]
    lengths: list[int]
    shared: Any = None
    private: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)
    generators: Any = None  # a hosted data rank's torch generators (training/virtual_ranks.py); None: the process's
    counts: list[float] | None = None  # labelled items per component, counted on the host before the copy to the device

    @property
    def num_words(self) -> int:
        return sum(self.lengths)

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.docs, self.lengths, to_device(self.shared, device), to_device(self.private, device), to_device(self.targets, device),
                     self.generators, self.counts)


class Pipeline(nn.Module):
    def __init__(
        self,
        config: Mapping[str, Any],
        labels: Mapping[str, list[str]],
        vectors: Any = None,
    ) -> None:
        """Build from a resolved config and label inventories (component name -> labels)."""
        super().__init__()
        self.config = dict(config)
        self.vectors = vectors
        comp_cfgs: Mapping[str, Any] = config.get("components") or {}
        order = list((config.get("nlp") or {}).get("pipeline") or comp_cfgs)
        self.grad_factors: dict[str, Schedule] = {}
        self.listening: list[str] = []
        components: dict[str, Component] = {}
        for name in order:
            settings = comp_cfgs[name]
            path = f"components.{name}"
            cls = component_class(settings.get("factory", ""), f"{path}.factory")
            comp_labels = list(labels.get(name, []))
            if not comp_labels:
                continue
            try:
                head = registry.resolve(settings["model"], f"{path}.model")
            except ConfigError:
                raise
            except ValueError as exc:  # an architecture refusing a value: name where it was set
                raise ConfigError(f"{path}.model", str(exc), f"fix the value: {path}.model.KEY=VALUE") from None
            comp = cls(name, head, comp_labels, settings)
            if settings.get("listen"):
                self.listening.append(name)
                self.grad_factors[name] = as_schedule(registry.resolve(settings.get("grad_factor", 1.0), f"{path}.grad_factor"), f"{path}.grad_factor")
            else:
                comp.embed = registry.resolve(settings["embed"], f"{path}.embed")
            components[name] = comp
        self.components = nn.ModuleDict(components)
        self._disabled: frozenset[str] = frozenset()  # select_pipes
        self.encoder: nn.Module | None = None
        if self.listening:
            enc_cfg = config.get("encoder")
            if not enc_cfg:
                raise ConfigError("encoder", "components listen to the shared encoder but no encoder is configured", "pick one: encoder=tok2vec")
            self.encoder = registry.resolve(enc_cfg["model"], "encoder.model")
        for module in self._embeddings():
            self._attach_vectors(module)
        for name, comp in self.components.items():
            embed = self.encoder if name in self.listening else comp.embed
            comp.initialize(int(embed.width))

    @property
    def pipe_names(self) -> list[str]:
        return list(self.components.keys())

    @property
    def labels(self) -> dict[str, list[str]]:
        return {name: comp.labels for name, comp in self.components.items()}

    def _embeddings(self) -> Iterator[nn.Module]:
        if self.encoder is not None:
            yield self.encoder
        for comp in self.components.values():
            if getattr(comp, "embed", None) is not None:
                yield comp.embed

    def _attach_vectors(self, module: nn.Module) -> None:
        for sub in module.modules():
            if getattr(sub, "include_static_vectors", False) and hasattr(sub, "attach_vectors"):
                if self.vectors is None:
                    raise ConfigError(
                        "initialize.vectors",
                        "include_static_vectors is true but no vectors table is given",
                        "create one with `distnlp init vectors` and set initialize.vectors=DIR",
                    )
                sub.attach_vectors(self.vectors)

    # --- training ----------------------------------------------------------------------------
    def featurize(self, docs: Sequence[Doc], *, with_targets: bool = True) -> Batch:
        """CPU-side preprocessing; kept apart from forward so it can run ahead of the device."""
        docs = list(docs)
        batch = Batch(docs, [len(d) for d in docs])
        if self.encoder is not None:
            batch.shared = self.encoder.featurize(docs)
        for name, comp in self.components.items():
            if name not in self.listening:
                batch.private[name] = comp.embed.featurize(docs)
            if with_targets:
                batch.targets[name] = comp.targets(docs)
        return batch

    def grad_factor_values(self, step: int) -> dict[str, float]:
        return {name: float(self.grad_factors[name](step)) for name in self.listening}

    def forward_scores(self, batch: Batch, step: int = 0) -> dict[str, Any]:
        """Every component's scores for the batch (the shared layer runs once)."""
        factors = self.grad_factor_values(step)
        hidden = None
        if self.encoder is not None:
            if self.training and any(f != 0.0 for f in factors.values()):
                hidden = self.encoder(batch.shared)
            else:
                # No listener sends a gradient: skip autograd for the shared layer entirely.
                with torch.no_grad():
                    hidden = self.encoder(batch.shared)
        scores: dict[str, Any] = {}
        for name, comp in self.components.items():
            if name in self.listening:
                X = scale_grad(hidden, factors[name]) if self.training else hidden
            else:
                X = comp.embed(batch.private[name])
            scores[name] = comp(X, batch.lengths)
        self._last_hidden = hidden
        return scores

    def losses(self, batch: Batch, step: int = 0) -> dict[str, tuple[torch.Tensor, int]]:
        """Per component: (sum of its loss over labelled items, number of labelled items)."""
        scores = self.forward_scores(batch, step)
        return {name: comp.loss(scores[name], batch.targets[name]) for name, comp in self.components.items()}

    def set_dropout(self, rate: float | None) -> None:
        if rate is None:
            return
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = float(rate)

    # --- inference ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def predict(self, docs: Sequence[Doc]) -> list[Doc]:
        """Annotate the given Docs in place (and return them)."""
        docs = list(docs)
        if not docs:
            return docs
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                batch = self.featurize(docs, with_targets=False).to(self.device)
                scores = self.forward_scores(batch)
                if self.encoder is not None and hasattr(self.encoder, "annotate"):
                    self.encoder.annotate(docs, batch.shared)  # doc.trf_data, per the annotation setter
                for name, comp in self._annotation_order():
                    comp.set_annotations(docs, scores[name], batch.lengths)
                self._set_tensors(docs, batch.lengths)
        finally:
            self.train(was_training)
        return docs

    def _annotation_order(self) -> list[tuple[str, Component]]:
        """Pipeline order, except that sentence boundaries are written first: the parser decodes
        within the senter's sentences whatever their order in nlp.pipeline. Disabled components
        (`select_pipes`) write nothing."""
        items = [(name, comp) for name, comp in self.components.items() if name not in self._disabled]
        return sorted(items, key=lambda item: item[1].factory != "senter")  # stable: others keep their order

    @contextlib.contextmanager
    def select_pipes(self, *, disable: Iterable[str]) -> Iterator["Pipeline"]:
        """Within the block, the named components annotate nothing (spaCy's nlp.select_pipes):
        e.g. `disable=["senter"]` keeps the sentence starts a Doc already has."""
        names = frozenset(disable)
        unknown = sorted(names - set(self.components))
        if unknown:
            raise ConfigError("select_pipes.disable", f"no component named {unknown[0]!r}", f"choose from {', '.join(self.components)}")
        before = self._disabled
        self._disabled = before | names
        try:
            yield self
        finally:
            self._disabled = before

    def sentence_components(self) -> list[str]:
        """The components that write sentence starts (senters)."""
        return [name for name, comp in self.components.items() if comp.factory == "senter"]

    def eval_input(self, gold: Doc, *, gold_sents: bool = False) -> Doc:
        """What evaluation predicts into: the gold words, and the gold sentence starts when a
        parser has no senter to find them (it parses within the given sentences) or when
        `gold_sents` asks for them (run the senter disabled: `select_pipes`)."""
        doc = gold.copy_unannotated()
        factories = {comp.factory for comp in self.components.values()}
        if (gold_sents or ("parser" in factories and "senter" not in factories)) and gold.sent_starts is not None:
            doc.sent_starts = list(gold.sent_starts)
        return doc

    def _set_tensors(self, docs: list[Doc], lengths: list[int]) -> None:
        hidden = getattr(self, "_last_hidden", None)
        if hidden is not None and hidden.dim() == 2:
            arr = hidden.float().cpu().numpy()
            pos = 0
            for doc, n in zip(docs, lengths):
                doc.tensor = arr[pos : pos + n]
                pos += n
        if self.vectors is not None:
            for doc in docs:
                doc.vocab_vectors = self.vectors

    def make_doc(self, text: str) -> Doc:
        if not hasattr(self, "_tokenizer"):
            self._tokenizer = Tokenizer()
        return self._tokenizer(text)

    def __call__(self, text: str | Doc) -> Doc:  # type: ignore[override]
        return next(iter(self.pipe([text])))

    def pipe(self, texts: Iterable[str | Doc], batch_size: int = 128, *, max_words: int = 4000, window: int = 1024) -> Iterator[Doc]:
        """Annotate texts (tokenized with distnlp's tokenizer) or Docs; yields them in input order.

        Reads `window` docs at a time, sorts them by length and predicts them in batches of at
        most `batch_size` docs whose padded size (longest doc x docs) stays within `max_words`
        (budget.py): similar lengths together waste little padding. A longer doc runs alone.
        """
        if window < 1:
            raise ValueError(f"window ({window}) must be at least 1")
        items = iter(texts)
        while True:
            docs = [self.make_doc(item) if isinstance(item, str) else item for item in itertools.islice(items, window)]
            if not docs:
                return
            for indices in budgeted_batches([len(d) for d in docs], max_words, batch_size):
                self.predict([docs[i] for i in indices])  # annotates in place
            yield from docs

    def scorer(self) -> Any:
        """A Scorer for exactly what this pipeline predicts."""
        attrs: list[str] = []
        options: dict[str, Any] = {}
        own: list[str] = []
        for comp in self.components.values():
            for attr in comp.score_attrs():
                if attr not in attrs:
                    attrs.append(attr)
            if comp.factory in ("textcat", "textcat_multilabel"):
                options = {"cats_labels": comp.labels, "cats_exclusive": comp.factory == "textcat"}
            own += comp.score_names
        counters = [comp.score_counts for comp in self.components.values() if comp.score_names]
        return Scorer(attrs, **options, own=own, count_own=counters)

    def evaluate(self, golds: Sequence[Doc], batch_size: int = 128) -> dict[str, Any]:
        preds = list(self.pipe((self.eval_input(g) for g in golds), batch_size=batch_size))
        scorer = self.scorer()
        scorer.update(list(golds), preds)
        return scorer.scores()

    # --- save / load -------------------------------------------------------------------------
    def to_disk(self, path: str | Path, *, meta: Mapping[str, Any] | None = None) -> None:
        """config.json + labels.json + model.safetensors (+ vectors/, code.py); no pickle.

        Written into a temporary directory and renamed into place. An existing `path` is replaced
        only when it is a distnlp model holding nothing but the files distnlp wrote there
        (meta.json lists them); anything else is refused (NotOwnedError), never deleted.
        """
        path = Path(os.path.abspath(path))  # "." or "..": its parent and name must be real
        owned = model_entries(path)
        check_replaceable(path, owned, what="model directory", fix="save the model to a new or empty directory")
        clean_stale_temps(path.parent, f".{path.name}.tmp-", MODEL_ENTRIES)
        clean_stale_temps(path.parent, f".{path.name}.old-", MODEL_ENTRIES)
        tmp = make_temp_dir(path.parent, f".{path.name}.tmp-")
        try:
            self._write(tmp, meta)
            publish_dir(tmp, path, owned, what="model directory")
        except BaseException:
            discard_temp_dir(tmp, MODEL_ENTRIES)
            raise

    def _write(self, tmp: Path, meta: Mapping[str, Any] | None) -> None:
        # Written through the checkpoint Writer: each file's size and SHA-256 taken from its bytes as
        # they are written (the weights streamed tensor by tensor, byte-identical to save_file).
        out = Writer(tmp)
        config = dict(self.config)
        code = config.get("code")
        if code:
            shutil.copyfile(code, tmp / "code.py")
            config["code"] = "code.py"
        out.write("config.json", [json.dumps(config, indent=2).encode("utf-8")])
        out.write("labels.json", [json.dumps(self.labels, indent=2).encode("utf-8")])
        out.tensors(WEIGHTS_FILE, self.state_dict())
        if self.vectors is not None and hasattr(self.vectors, "to_disk"):
            self.vectors.to_disk(tmp / "vectors")
        for module in self._embeddings():
            if hasattr(module, "save_extra"):
                module.save_extra(tmp)
        # `files`: what a later save may replace here (and nothing else)
        files = sorted([e.name for e in tmp.iterdir() if e.name != MARKER] + [META_FILE])
        # `checksums`: every file written, with size and SHA-256, checked by from_disk (integrity.py);
        # those not written through `out` (code.py, vectors/, transformer/) are hashed now
        checksums = complete_checksums(tmp, out.files, frozenset({MARKER, META_FILE}))
        info = {"distnlp_version": __version__, "pipeline": self.pipe_names, **(meta or {}), "files": files, CHECKSUMS: checksums}
        (tmp / META_FILE).write_text(json.dumps(info, indent=2))

    @classmethod
    def from_disk(cls, path: str | Path, device: str | torch.device | None = None, *, trust_code: bool = False) -> "Pipeline":
        """Load a saved pipeline. Weights are safetensors and the config names registered
        callables, so loading runs no code from the folder, unless the model ships its own
        (`code.py`, or a transformer with remote code): that needs `trust_code=True`."""
        path = Path(path)
        for name in ("config.json", "labels.json", WEIGHTS_FILE):
            if not (path / name).exists():
                raise CheckpointError(f"{path}: not a saved distnlp pipeline ({name} is missing); pass a model-best/ or model-last/ directory")
        # Every file meta.json lists has its size and SHA-256, before anything is read (integrity.py)
        verify_files(path, read_meta(path))
        try:
            config = json.loads((path / "config.json").read_text())
            labels = json.loads((path / "labels.json").read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: corrupt config.json/labels.json ({exc}); re-save the model") from None
        _check_trust(path, config, trust_code)
        if config.get("code"):
            config["code"] = str(path / config["code"])
            registry.import_code(config["code"])
        vectors = None
        setting = (config.get("initialize") or {}).get("vectors")
        if isinstance(setting, dict):
            vectors = registry.resolve(setting, "initialize.vectors")  # a user vectors class
        elif (path / "vectors").exists():
            vectors = Vectors.from_disk(path / "vectors")
            check_finite_array(vectors.data, path / "vectors" / "vectors.safetensors", "vectors")
        config = _with_saved_extras(config, path)
        nlp = cls(config, labels, vectors)
        try:
            state = load_file(str(path / WEIGHTS_FILE))
        except Exception as exc:
            raise CheckpointError(f"{path / WEIGHTS_FILE}: cannot read weights ({exc}); the file is corrupt or truncated") from None
        check_finite(state, path / WEIGHTS_FILE)
        try:
            missing, unexpected = nlp.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # a shape that differs: torch's message spans lines
            raise CheckpointError(f"{path / WEIGHTS_FILE}: weights do not match the config ({' '.join(str(exc).split())})") from None
        if missing or unexpected:
            raise CheckpointError(f"{path / WEIGHTS_FILE}: weights do not match the config (missing: {missing[:5]}, unexpected: {unexpected[:5]})")
        nlp.eval()
        if device is not None:
            nlp.to(device)
        return nlp


TRUST_HINT = "pass trust_code=True to distnlp.load() / Pipeline.from_disk(), or --trust-code to the command, only if you trust where this model came from"


def _check_trust(path: Path, config: Mapping[str, Any], trust_code: bool) -> None:
    """Refuse a model that would run its own code on load unless the caller trusts it."""
    code = config.get("code")
    if code:
        code_path = path / str(code)
        if not trust_code:
            raise CheckpointError(f"{code_path}: this model runs its own Python code when loaded; not running it ({TRUST_HINT})")
        if path.resolve() not in code_path.resolve().parents:
            raise CheckpointError(f"{path}/config.json: code {code!r} is outside the model directory; re-save the model")
    remote = _remote_code_keys(config)
    if remote and not trust_code:
        raise CheckpointError(f"{path}/config.json: {remote[0]} is set, so loading would run code from the transformer's folder; not running it ({TRUST_HINT})")


def _remote_code_keys(node: Any, where: str = "") -> list[str]:
    """Config paths that ask Hugging Face to import model code (trust_remote_code)."""
    found: list[str] = []
    if isinstance(node, Mapping):
        for k, v in node.items():
            key = f"{where}.{k}" if where else str(k)
            if k == "trust_remote_code" and v:
                found.append(key)
            found += _remote_code_keys(v, key)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _remote_code_keys(v, f"{where}[{i}]")
    return found


def _with_saved_extras(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """Point saved transformers at the copy inside the model directory (no network on load).

    Independent components' private transformers point there too: their weights come from the
    state dict anyway, the folder only supplies the architecture config and tokenizer.
    """
    if not (path / "transformer").exists():
        return config
    config = json.loads(json.dumps(config))
    local = str(path / "transformer")
    enc = config.get("encoder")
    if isinstance(enc, dict) and isinstance(enc.get("model"), dict) and "name" in enc["model"]:
        enc["model"]["name"] = local
    for comp in (config.get("components") or {}).values():
        embed = comp.get("embed") if isinstance(comp, dict) else None
        if isinstance(embed, dict) and embed.get(registry.USE_KEY) == "distnlp.Transformer.v1":
            embed["name"] = local
    return config


def model_entries(path: Path) -> frozenset[str]:
    """The entries of a distnlp model in `path` that a new save may replace: those its meta.json
    lists (older models: every name distnlp saves), or none when `path` is not a model distnlp saved."""
    try:
        info = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return frozenset()
    if not isinstance(info, dict) or "distnlp_version" not in info or not (path / "config.json").is_file():
        return frozenset()
    files = info.get("files")
    if not isinstance(files, list):
        return MODEL_ENTRIES
    return frozenset(f for f in files if isinstance(f, str) and f not in ("", ".", "..") and "/" not in f and os.sep not in f)
