"""Finding an exported network and its model card: the part the refiner and the lifter share.

Both runtimes (:mod:`models.refiner`, :mod:`models.lifter`) open an ONNX file written by
``crossview train export`` with a card ``<name>.card.yaml`` beside it, and both take the same
kinds of spec on the command line (``--refiner SPEC``, ``--lifter SPEC``): ``"default"`` (the
shipped model in ``assets/models``), the path of an exported ``.onnx`` file, or a folder holding
``<name>.onnx``. :class:`ExportedModel` holds what differs between the two (the name, the card's
family and keys, how the export is asked for) and does the common work::

    REFINER = ExportedModel("refiner", "cvugcn-refiner", card_keys, export_out="DIR")
    onnx_path = REFINER.resolve(spec)                  # CrossviewError saying what to do when missing
    data = REFINER.read_card(card_path, required=("file", ...))  # dict: schema_version, family, keys checked
    card = REFINER.open_card(onnx_path, load_refiner_card)       # beside the file, naming it, same sha256

The detectors' cards (:mod:`models.model_card`) are another format, with their own reader.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, TypeVar

import yaml

from calibration.errors import CrossviewError

CARD_SUFFIX = ".card.yaml"
CARD_SCHEMA_VERSION = 1
#: The app's shipped models: ``assets/models/<name>.onnx`` and their cards.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "models"
#: How ``crossview train export`` is told where to write: into a folder, or to an ONNX file.
_EXPORT_OUTS = ("DIR", "FILE.onnx")


class _Card(Protocol):
    file: str
    sha256: str | None


CardT = TypeVar("CardT", bound=_Card)


def card_path_for(onnx_path: str | Path) -> Path:
    """``refiner.onnx`` -> ``refiner.card.yaml`` beside it."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.stem + CARD_SUFFIX)


def card_int(value: Any, key: str, path: Path) -> int:
    """``value`` of card ``path``'s ``key`` as an integer (bool refused), else CrossviewError naming both."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise CrossviewError(f"{path}: key {key!r}: must be an integer, got {value!r}")
    return value


def card_text(value: Any, key: str, path: Path) -> str:
    """``value`` as non-empty text, else CrossviewError naming the file and the key."""
    if not isinstance(value, str) or not value:
        raise CrossviewError(f"{path}: key {key!r}: must be text, got {value!r}")
    return value


def card_mapping(value: Any, key: str, path: Path) -> dict:
    """``value`` as a mapping, else CrossviewError naming the file and the key."""
    if not isinstance(value, dict):
        raise CrossviewError(f"{path}: key {key!r}: must be a mapping, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class ExportedModel:
    """One kind of exported network: what its files are called, what its card holds, how to export it.

    Attributes:
        name: ``"refiner"`` or ``"lifter"``: the file ``<name>.onnx``, the option ``--<name>`` and
            the subject of the messages.
        family: the ``family`` its cards state.
        card_keys: every key its cards may hold.
        export_out: the ``--out`` of ``crossview train export RUN``: ``"DIR"`` (the export writes
            ``<name>.onnx`` and its card into a folder) or ``"FILE.onnx"`` (the card goes beside it).
        default_dir: the folder of the shipped ``<name>.onnx``.
    """

    name: str
    family: str
    card_keys: frozenset[str]
    export_out: str
    default_dir: Path = DEFAULT_MODEL_DIR

    def __post_init__(self) -> None:
        if not self.name or not self.family:
            raise ValueError("ExportedModel: name and family must be non-empty")
        if self.export_out not in _EXPORT_OUTS:
            raise ValueError(f"ExportedModel: export_out must be one of {', '.join(_EXPORT_OUTS)}, "
                             f"got {self.export_out!r}")
        object.__setattr__(self, "card_keys", frozenset(self.card_keys))
        object.__setattr__(self, "default_dir", Path(self.default_dir))

    @property
    def file_name(self) -> str:
        """``<name>.onnx``."""
        return f"{self.name}.onnx"

    @property
    def export_command(self) -> str:
        """The command that writes a model and its card, with placeholders: ``crossview train export RUN --out DIR``."""
        return f"crossview train export RUN --out {self.export_out}"

    def _export_to(self, run: str | Path, folder: Path) -> str:
        """The export command that writes ``folder/<name>.onnx`` and its card from training run ``run``."""
        out = folder if self.export_out == "DIR" else folder / self.file_name
        return f"crossview train export {run} --out {out}"

    def resolve(self, spec: str | Path) -> Path:
        """The ONNX file a ``--<name>`` spec names: ``"default"``, a ``.onnx`` file or a folder holding one.

        Raises:
            CrossviewError: no such file; a folder without ``<name>.onnx`` (a training run without an
                export is told the command); a file that is not ``.onnx``; the shipped model missing.
        """
        if str(spec) == "default":
            path = self.default_dir / self.file_name
            if not path.is_file():
                command = self._export_to("RUN", self.default_dir)
                raise CrossviewError(f"the default {self.name} {path} is missing from this installation; export one "
                                     f"with '{command}', or run with --{self.name} none")
            return path
        path = Path(spec).expanduser()
        if path.is_dir():
            candidate = path / self.file_name
            if candidate.is_file():
                return candidate
            hint = (f"it is a training run without an export: run '{self._export_to(path, path)}'"
                    if (path / "checkpoint.pt").is_file()
                    else f"give the .onnx file or a folder holding {self.file_name}")
            raise CrossviewError(f"{self.name} {path}: the folder has no {self.file_name}; {hint}")
        if not path.is_file():
            raise CrossviewError(f"{self.name} {path}: no such file; use --{self.name} default, none or the path of an "
                                 f"exported {self.file_name}")
        if path.suffix.lower() != ".onnx":
            raise CrossviewError(f"{self.name} {path}: expected an exported .onnx model ({self.export_command})")
        return path

    def read_card(self, path: str | Path, required: tuple[str, ...] = ()) -> dict:
        """A card's YAML, checked for what every card of this kind shares; the caller reads the rest.

        Args:
            path: the card file.
            required: keys that must be present.

        Returns:
            The card's mapping, with known keys only, this ``schema_version`` and ``family``.

        Raises:
            CrossviewError: unreadable file, bad YAML, not a mapping, an unknown key, a wrong
                schema_version or family, a missing required key; the message names the file and key.
        """
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CrossviewError(f"{path}: cannot read the {self.name}'s model card: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise CrossviewError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise CrossviewError(f"{path}: a model card must be a YAML mapping, got {type(data).__name__}")
        unknown = sorted(set(map(str, data)) - self.card_keys)
        if unknown:
            raise CrossviewError(f"{path}: unknown key(s) {', '.join(unknown)}; "
                                 f"allowed: {', '.join(sorted(self.card_keys))}")
        if data.get("schema_version") != CARD_SCHEMA_VERSION:
            raise CrossviewError(f"{path}: key 'schema_version': this version reads {CARD_SCHEMA_VERSION}, "
                                 f"the card has {data.get('schema_version')!r}")
        if data.get("family") != self.family:
            raise CrossviewError(f"{path}: key 'family': a {self.name} card says {self.family!r}, this one "
                                 f"{data.get('family')!r} (is it another model's card?)")
        for key in required:
            if key not in data:
                raise CrossviewError(f"{path}: key {key!r} is missing")
        return data

    def check_digest(self, card_path: Path, onnx_path: Path, sha256: str | None) -> None:
        """Raise when the card's ``sha256`` (None: unchecked) is not ``onnx_path``'s."""
        if sha256 is not None and hashlib.sha256(onnx_path.read_bytes()).hexdigest() != sha256:
            raise CrossviewError(f"{card_path}: describes another version of {onnx_path.name} (sha256 differs); "
                                 f"re-export both with '{self.export_command}'")

    def open_card(self, onnx_path: Path, load_card: Callable[[Path], CardT]) -> CardT:
        """The card beside ``onnx_path``, read by ``load_card``, checked to name that file and match its sha256.

        Raises:
            CrossviewError: the card is missing, names another file or describes another version of it
                (and whatever ``load_card`` raises).
        """
        card_path = card_path_for(onnx_path)
        if not card_path.is_file():
            raise CrossviewError(f"{self.name} {onnx_path}: its model card {card_path.name} is missing beside it; "
                                 f"'{self.export_command}' writes both")
        card = load_card(card_path)
        if card.file != onnx_path.name:
            raise CrossviewError(f"{card_path}: key 'file' names {card.file!r}, not {onnx_path.name!r}")
        self.check_digest(card_path, onnx_path, card.sha256)
        return card


__all__ = ["CARD_SCHEMA_VERSION", "CARD_SUFFIX", "DEFAULT_MODEL_DIR", "ExportedModel", "card_int", "card_mapping",
           "card_path_for", "card_text"]
