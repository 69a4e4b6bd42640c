"""The model catalog: every public OpenAI model id and how it maps onto Grok.

One data-driven table (protocol chat.md §2.3). Each entry says which upstream
selection to send (legacy ``modelName``/``modelMode`` or the newer ``modeId``),
which token pools may serve it (in preference order), what it costs in local
quota units (low effort 1, high effort 4) and what kind of work it is.

The table is version-sensitive upstream knowledge, so it is data, not code
paths: :func:`load_catalog` can merge overrides from a TOML file.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Iterable

import tomlkit
from pydantic import BaseModel, ConfigDict

LOW_COST = 1
HIGH_COST = 4

BASIC = "basic"
SUPER = "super"
HEAVY = "heavy"
POOLS: tuple[str, ...] = (BASIC, SUPER, HEAVY)


class ModelKind(StrEnum):
    CHAT = "chat"
    IMAGE = "image"
    IMAGE_EDIT = "image_edit"
    VIDEO = "video"


class ModelSpec(BaseModel):
    """How one public model id is served."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: ModelKind = ModelKind.CHAT
    model_name: str | None = None  # legacy ``modelName``
    model_mode: str | None = None  # legacy ``modelMode``
    mode_id: str | None = None  # ``modeId``; when set, modelName/modelMode are not sent
    pools: tuple[str, ...] = (BASIC, SUPER)
    cost: int = LOW_COST
    thinking: bool = False  # the model streams reasoning before the answer
    description: str = ""

    @property
    def effort(self) -> str:
        return "high" if self.cost >= HIGH_COST else "low"

    @property
    def rate_limit_model(self) -> str:
        """The ``modelName`` to ask ``/rest/rate-limits`` about for this model."""
        return self.mode_id or self.model_name or "grok-3"

    def selection(self) -> dict[str, str | None]:
        """The model-selection fields of a ``conversations/new`` payload."""
        if self.mode_id:
            return {"modeId": self.mode_id}
        return {"modelName": self.model_name, "modelMode": self.model_mode}


def _m(id: str, **kw: object) -> ModelSpec:
    return ModelSpec(id=id, **kw)  # type: ignore[arg-type]


_G41 = "grok-4-1-thinking-1129"
_SUPER_UP = (SUPER, HEAVY)
_ANY = (BASIC, SUPER, HEAVY)

DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    # V1 (Feb 2026) chat models; grok-3*/grok-4/grok-4-thinking keep the legacy pair.
    _m("grok-3", model_name="grok-3", model_mode="MODEL_MODE_GROK_3", pools=_ANY),
    _m("grok-3-fast", model_name="grok-3", model_mode="MODEL_MODE_GROK_3", pools=_ANY),
    _m("grok-3-mini", model_name="grok-3", model_mode="MODEL_MODE_GROK_3_MINI_THINKING", pools=_ANY,
       thinking=True),
    _m("grok-3-thinking", model_name="grok-3", model_mode="MODEL_MODE_GROK_3_THINKING", pools=_ANY,
       thinking=True),
    _m("grok-4", model_name="grok-4", model_mode="MODEL_MODE_GROK_4", pools=_ANY),
    _m("grok-4-mini", model_name="grok-4-mini", model_mode="MODEL_MODE_GROK_4_MINI_THINKING", pools=_ANY,
       thinking=True),
    _m("grok-4-fast", model_name=_G41, model_mode="MODEL_MODE_FAST", mode_id="fast", pools=_ANY),
    _m("grok-4-thinking", model_name="grok-4", model_mode="MODEL_MODE_GROK_4_THINKING", pools=_ANY,
       thinking=True),
    _m("grok-4-heavy", model_name="grok-4", model_mode="MODEL_MODE_HEAVY", mode_id="heavy", pools=_SUPER_UP,
       cost=HIGH_COST, thinking=True),
    _m("grok-4.1", model_name=_G41, model_mode="MODEL_MODE_FAST", mode_id="fast", pools=_ANY),
    _m("grok-4.1-mini", model_name=_G41, model_mode="MODEL_MODE_GROK_4_1_MINI_THINKING", mode_id="expert",
       pools=_ANY, thinking=True),
    _m("grok-4.1-fast", model_name=_G41, model_mode="MODEL_MODE_FAST", mode_id="fast", pools=_ANY),
    _m("grok-4.1-expert", model_name=_G41, model_mode="MODEL_MODE_EXPERT", mode_id="expert", pools=_ANY,
       cost=HIGH_COST, thinking=True),
    _m("grok-4.1-thinking", model_name=_G41, model_mode="MODEL_MODE_GROK_4_1_THINKING", mode_id="expert",
       pools=_ANY, cost=HIGH_COST, thinking=True),
    _m("grok-4.20-beta", model_name="grok-420", model_mode="MODEL_MODE_GROK_420", mode_id="expert",
       pools=_ANY, thinking=True),
    # V3 (Jul 2026) mode-based ids.
    _m("grok-4.20-0309-non-reasoning", mode_id="fast", pools=_ANY),
    _m("grok-4.20-0309", mode_id="auto", pools=_SUPER_UP),
    _m("grok-4.20-0309-reasoning", mode_id="expert", pools=_SUPER_UP, thinking=True),
    _m("grok-4.20-0309-non-reasoning-super", mode_id="fast", pools=_SUPER_UP),
    _m("grok-4.20-0309-super", mode_id="auto", pools=_SUPER_UP),
    _m("grok-4.20-0309-reasoning-super", mode_id="expert", pools=_SUPER_UP, thinking=True),
    _m("grok-4.20-0309-non-reasoning-heavy", mode_id="fast", pools=(HEAVY,)),
    _m("grok-4.20-0309-heavy", mode_id="auto", pools=(HEAVY,)),
    _m("grok-4.20-0309-reasoning-heavy", mode_id="expert", pools=(HEAVY,), thinking=True),
    _m("grok-4.20-multi-agent-0309", mode_id="heavy", pools=(HEAVY,), cost=HIGH_COST, thinking=True),
    _m("grok-4.20-fast", mode_id="fast", pools=(HEAVY, SUPER, BASIC)),
    _m("grok-4.20-auto", mode_id="auto", pools=(HEAVY, SUPER)),
    _m("grok-4.20-expert", mode_id="expert", pools=(HEAVY, SUPER), thinking=True),
    _m("grok-4.20-heavy", mode_id="heavy", pools=(HEAVY,), cost=HIGH_COST, thinking=True),
    _m("grok-4.3-beta", mode_id="grok-420-computer-use-sa", pools=_SUPER_UP, thinking=True),
    # V4 (Aug 2026) chat ids.
    _m("grok-chat-fast", mode_id="fast", pools=_ANY),
    _m("grok-chat-auto", mode_id="auto", pools=_SUPER_UP),
    _m("grok-chat-expert", mode_id="expert", pools=_SUPER_UP, thinking=True),
    _m("grok-chat-heavy", mode_id="heavy", pools=(HEAVY,), cost=HIGH_COST, thinking=True),
    # Media.
    _m("grok-imagine-1.0", kind=ModelKind.IMAGE, model_name="grok-3", model_mode="MODEL_MODE_FAST",
       pools=_ANY, cost=HIGH_COST),
    _m("grok-imagine-1.0-fast", kind=ModelKind.IMAGE, model_name="grok-3", model_mode="MODEL_MODE_FAST",
       pools=_ANY, cost=HIGH_COST),
    _m("grok-imagine-1.0-edit", kind=ModelKind.IMAGE_EDIT, model_name="imagine-image-edit", model_mode=None,
       pools=_ANY, cost=HIGH_COST),
    _m("grok-imagine-1.0-video", kind=ModelKind.VIDEO, model_name="grok-3", model_mode="MODEL_MODE_FAST",
       pools=_ANY, cost=HIGH_COST),
    _m("grok-imagine-image-lite", kind=ModelKind.IMAGE, mode_id="fast", pools=_ANY),
    _m("grok-imagine-image", kind=ModelKind.IMAGE, mode_id="auto", pools=_SUPER_UP, cost=HIGH_COST),
    _m("grok-imagine-image-pro", kind=ModelKind.IMAGE, mode_id="auto", pools=_SUPER_UP, cost=HIGH_COST),
    _m("grok-imagine-image-2.0", kind=ModelKind.IMAGE, mode_id="auto", pools=_SUPER_UP, cost=HIGH_COST),
    _m("grok-imagine-image-edit", kind=ModelKind.IMAGE_EDIT, model_name="imagine-image-edit",
       pools=_SUPER_UP, cost=HIGH_COST),
    _m("grok-imagine-video", kind=ModelKind.VIDEO, model_name="grok-3", model_mode="MODEL_MODE_FAST",
       pools=_SUPER_UP, cost=HIGH_COST),
)


class Catalog:
    """Lookup over the model table."""

    def __init__(self, models: Iterable[ModelSpec]) -> None:
        self._models: dict[str, ModelSpec] = {m.id: m for m in models}

    def get(self, model_id: str) -> ModelSpec | None:
        return self._models.get(model_id)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._models

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def ids(self) -> list[str]:
        return list(self._models)


def load_catalog(override_file: str | Path | None = None) -> Catalog:
    """The default table, with ``[[model]]`` entries from ``override_file`` replacing or adding ids."""
    models = {m.id: m for m in DEFAULT_MODELS}
    if override_file:
        doc = tomlkit.parse(Path(override_file).read_text(encoding="utf-8")).unwrap()
        for entry in doc.get("model", []):
            base = models.get(entry.get("id", ""))
            merged = {**(base.model_dump() if base else {}), **entry}
            spec = ModelSpec.model_validate(merged)
            models[spec.id] = spec
    return Catalog(models.values())


CATALOG = load_catalog()
