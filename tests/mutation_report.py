"""Score per module and surviving mutants from `mutmut results --all true` (read on stdin).

Used by `make mutate`; a mutant "not checked" (not run yet) counts for neither side.
"""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict


def main() -> int:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for line in sys.stdin:
        if ": " not in line:
            continue
        name, status = line.strip().rsplit(": ", 1)
        module = re.split(r"\.x[ǁ_]", name)[0]
        counts[module][status] += 1
        if status == "survived":
            survivors[module].append(name)
    for module, c in sorted(counts.items()):
        judged = c["killed"] + c["survived"] + c["timeout"]
        if not judged:
            continue
        score = 100.0 * (c["killed"] + c["timeout"]) / judged
        print(
            f"{module}: {score:.0f} % killed ({judged - c['survived']} of {judged}; {c['not checked']} not run)"
        )
        for name in survivors[module]:
            print(f"  survived {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
