"""The limits that keep one hostile spec file from taking the loader (and every other spec's DAGs) down.

Each is far above any real spec: the example specs are ~6 KB, nest ~8 levels, hold ~300 values.
"""

from __future__ import annotations

#: Bytes of a spec or defaults file. The parse cost, and the DAG processor's time per loader
#: file, stay bounded; the file is not even read past it.
MAX_SPEC_BYTES = 256 * 1024
#: Nesting of mappings and sequences (block or flow, aliases expanded). Composing and building
#: nested values recurses, and libyaml's own composer overflows the C stack on ~10,000 nested
#: brackets (SIGSEGV, no error to report); its scanner slows down quadratically long before.
MAX_DEPTH = 64
#: Values after aliases are expanded: more is an alias bomb or a mistake. Each alias is copied
#: where it is used, so nested aliases grow exponentially ("billion laughs").
MAX_VALUES = 20_000
#: Integers a spec may hold (64-bit signed): counts, seeds and sizes beyond it only overflow later.
MAX_INT = 2**63 - 1
#: Broken files up to this size are parsed again by the pure-Python parser for its messages;
#: bigger ones keep libyaml's, so a broken file costs little more than a good one.
SLOW_PARSE_BYTES = 64 * 1024
