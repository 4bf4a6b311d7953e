"""A small, dependency-free cron validator (five fields), so parsing never imports a heavy module."""

from __future__ import annotations

_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {
            m: i + 1
            for i, m in enumerate(
                ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
            )
        },
    ),
    ("day of week", 0, 7, {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}),
)


def _value(token: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    number = names.get(token.lower()) if not token.isdigit() else int(token)
    if number is None:
        raise ValueError(
            f"{field}: {token!r} is not a number" + (f" or name ({', '.join(names)})" if names else "")
        )
    if not low <= number <= high:
        raise ValueError(f"{field}: {number} is outside {low}-{high}")
    return number


def validate_cron(expr: str) -> None:
    """Raise ``ValueError`` naming the bad field unless ``expr`` is a valid 5-field cron."""
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day month weekday), this one has {len(parts)}"
        )
    for part, (field, low, high, names) in zip(parts, _FIELDS, strict=True):
        for item in part.split(","):
            base, _, step = item.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                raise ValueError(f"{field}: step {step!r} must be a positive number")
            if base == "*":
                continue
            start, dash, end = base.partition("-")
            first = _value(start, low, high, names, field)
            if dash:
                last = _value(end, low, high, names, field)
                if last < first:
                    raise ValueError(f"{field}: range {base!r} runs backwards")
