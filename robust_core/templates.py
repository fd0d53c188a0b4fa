"""Prompt templates, shipped as data (``templates.json``), each with a ``{c}`` class placeholder.

``get_templates("openai_imagenet")`` gives CLIP's 80 ImageNet prompts, identical to open_clip's
``OPENAI_IMAGENET_TEMPLATES``; ``simple`` is the single ``a photo of a {c}.`` prompt.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

_FILE = Path(__file__).parent / "templates.json"


@cache
def _all() -> dict[str, list[str]]:
    data = json.loads(_FILE.read_text())
    data.pop("_doc", None)
    return data


def list_template_sets() -> list[str]:
    """Names of the shipped template sets."""
    return sorted(_all())


def get_templates(name: str) -> list[str]:
    """The templates of set ``name``; raises ``KeyError`` naming the known sets."""
    sets = _all()
    if name not in sets:
        raise KeyError(f"Unknown template set {name!r}; known: {', '.join(sorted(sets))}.")
    return list(sets[name])


def fill(templates: list[str], classname: str) -> list[str]:
    """All prompts for one class."""
    return [t.format(c=classname) for t in templates]
