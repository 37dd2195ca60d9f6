"""Property-based tests (hypothesis) of the parser, JIDs, data forms and SASL.

Each property runs a modest number of examples so that CI stays fast (a few seconds for all);
``MINIXMPP_PROPERTY_SCALE=N`` multiplies them for a deeper run, e.g.
``MINIXMPP_PROPERTY_SCALE=50 .venv/bin/pytest tests/properties``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = float(os.environ.get("MINIXMPP_PROPERTY_SCALE", "1"))


def examples(count: int) -> settings:
    """Settings for a property: ``count`` examples (times the scale), no deadline (CI machines
    are shared), and no complaint about large generated streams."""
    return settings(
        max_examples=max(1, round(count * SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
    )
