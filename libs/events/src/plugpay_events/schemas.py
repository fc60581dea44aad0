"""JSON Schema of every event, written to ``docs/events/`` and checked for drift in CI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from plugpay_events import contracts  # noqa: F401  (registers the types)
from plugpay_events.envelope import Envelope
from plugpay_events.registry import EVENT_TYPES


def render_all() -> dict[str, str]:
    """File name -> JSON text for the envelope, each event type and the catalogue."""
    files: dict[str, str] = {}
    catalogue: list[dict[str, Any]] = []
    files["Envelope.json"] = _dump(Envelope.model_json_schema())
    for name in sorted(EVENT_TYPES):
        cls = EVENT_TYPES[name]
        schema = cls.model_json_schema()
        schema["x-plugpay"] = {
            "type": cls.type,
            "version": cls.version,
            "topic": cls.topic.name,
            "key": cls.aggregate_field,
        }
        files[f"{name}.json"] = _dump(schema)
        catalogue.append(
            {
                "type": cls.type,
                "version": cls.version,
                "topic": cls.topic.name,
                "key": cls.aggregate_field,
                "description": (cls.__doc__ or "").strip().splitlines()[0],
            }
        )
    files["catalogue.json"] = _dump(catalogue)
    return files


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def main() -> None:
    """Write the schemas: ``python -m plugpay_events.schemas docs/events``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.json"):
        stale.unlink()
    for name, content in render_all().items():
        (out / name).write_text(content)


if __name__ == "__main__":
    main()
