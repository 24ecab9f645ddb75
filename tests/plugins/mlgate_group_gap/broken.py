"""A plug-in module whose import fails, as one with a missing dependency would."""

import mlgate_group_gap_missing_dependency  # type: ignore[import-not-found]  # noqa: F401
