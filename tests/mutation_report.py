"""Score per module and surviving mutants from `mutmut results --all true` (read on stdin).

Used by `make mutate` (the full report) and `make bench` (`--scores`: one line per module). A mutant
"not checked" (not run yet) counts for neither side. Survivors listed in EQUIVALENT (and in the README's
"Mutation testing" section, with the same reasons) are mutants no test can kill because the program
behaves the same; they are shown apart and the second score leaves them out.

mutmut names mutants by function and position (`core.judge.x_effect_size__mutmut_23`), so an edit
to a function renumbers its mutants: re-check the list against `mutmut show NAME` after one.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter, defaultdict

_TIES = "a tie group of one adds t³ - t = 0 to the tie term"
_N2 = "n = n1 + n2 ≥ 2 once both samples are non-empty (checked above), so this branch is never taken"
_TWO_SIDED = "any alternative other than greater/less is two-sided, so a misspelt default is the same test"

#: survivor name -> why no test can tell it from the original
EQUIVALENT: dict[str, str] = {
    # core.judge
    "core.judge.x__ranks__mutmut_9": "every rank is assigned in the loop; the initial 0.0 is never read",
    "core.judge.x__ranks__mutmut_38": _TIES,
    "core.judge.x_mann_whitney_u__mutmut_1": _TWO_SIDED,
    "core.judge.x_mann_whitney_u__mutmut_2": _TWO_SIDED,
    "core.judge.x_mann_whitney_u__mutmut_34": _N2,
    "core.judge.x_mann_whitney_u__mutmut_43": _N2,
    "core.judge.x_mann_whitney_u__mutmut_45": _N2,
    "core.judge.x_effect_size__mutmut_23": (
        "cm > 0 vs cm >= 0 with bm == 0: cm == 0 with bm == 0 took the means branch above, "
        "which returns or leaves bm != 0"
    ),
    "core.judge.x__judge_metric__mutmut_37": _TWO_SIDED + ' ("either" maps to it)',
    "core.judge.x__judge_metric__mutmut_38": _TWO_SIDED + ' ("either" maps to it)',
    # core.analysis
    "core.analysis.x__near__mutmut_5": (
        "< vs <= 0.005: differs only when |value - limit| is exactly the float 0.005, which no percentage "
        "or latency ratio reaches (searched); either spelling still differs from the limit's"
    ),
    **{
        f"core.analysis.x_judge__mutmut_{n}": (
            "the placeholder sample of a missing read: its reason is never read (the interval's reason is "
            '"metrics were not read")'
        )
        for n in (7, 8, 9, 13, 14, 15)
    },
    "core.analysis.x_judge__mutmut_215": "Judgement's no_data_reason defaults to None: dropping the None is the same",
    "core.analysis.x_judge__mutmut_232": "Judgement's no_data_reason defaults to None: dropping the None is the same",
    # core.signoff
    **{
        f"core.signoff.xǁSignOffLedgerǁ_needed__mutmut_{n}": (
            "max()'s default is never used: signed(), overridden() and apply() ask only once records exist"
        )
        for n in (7, 9, 10)
    },
    **{
        f"core.signoff.xǁSignOffLedgerǁ_people_problem__mutmut_{n}": (
            "the 'override' wording of the author refusal is unreachable: override() refuses the author "
            "first, with its own message, whatever author_may_sign says"
        )
        for n in (13, 19, 20)
    },
    # core.redact
    "core.redact.x__spellings__mutmut_3": "ensure_ascii=None is falsy: the same as False",
    "core.redact.x__spellings__mutmut_20": 'safe="XXXX": X is unreserved, quote() never encodes it anyway',
    "core.redact.x__refresh_env__mutmut_4": "re-reads the environment every call instead of on change: slower, same secrets",
    "core.redact.x_reset_for_tests__mutmut_1": '"" like None differs from any environment: the next call re-reads it',
    # core.adapters.command
    "core.adapters.command.xǁSubprocessRunnerǁrun__mutmut_61": '"UTF-8" and "utf-8" name the same codec',
    "core.adapters.command.xǁSubprocessRunnerǁrun__mutmut_70": "None is falsy like False, and is only tested for truth",
    "core.adapters.command.xǁSubprocessRunnerǁrun__mutmut_104": (
        "`code or 1` only differs for code 0 or None, which never reach the signal branch after wait()"
    ),
    # core.adapters.kubernetes.undo
    **{
        f"core.adapters.kubernetes.undo.x_pick_revision__mutmut_{n}": (
            "the starting values: the first ReplicaSet (revision >= 0 > -1) replaces latest and moves it into "
            "previous, so they differ only for a revision annotation below 0, which Kubernetes never writes"
        )
        for n in (4, 6, 7)
    },
    **{
        f"core.adapters.kubernetes.undo.x_pick_revision__mutmut_{n}": (
            ">= vs > (as kubectl has it): differs only when two ReplicaSets carry the same revision, and "
            "the Deployment controller numbers each one anew"
        )
        for n in (14, 17)
    },
}


def _module(name: str) -> str:
    return re.split(r"\.x[ǁ_]", name)[0]


def main(argv: list[str]) -> int:
    scores_only = "--scores" in argv
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for line in sys.stdin:
        if ": " not in line:
            continue
        name, status = line.strip().rsplit(": ", 1)
        counts[_module(name)][status] += 1
        if status == "survived":
            survivors[_module(name)].append(name)
    for module, c in sorted(counts.items()):
        judged = c["killed"] + c["survived"] + c["timeout"]
        if not judged:
            continue
        killed = judged - c["survived"]
        equivalent = [n for n in survivors[module] if n in EQUIVALENT]
        # floored: 364 of 365 is 99 %, never "100 %"
        line = f"{module}: {math.floor(100.0 * killed / judged)} % killed ({killed} of {judged}"
        if equivalent:
            rest = judged - len(equivalent)
            line += f"; {math.floor(100.0 * killed / rest)} % of the {rest} not equivalent"
        print(line + (f"; {c['not checked']} not run)" if c["not checked"] else ")"))
        if scores_only:
            continue
        for name in survivors[module]:
            why = EQUIVALENT.get(name)
            print(f"  equivalent {name}: {why}" if why else f"  survived {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
