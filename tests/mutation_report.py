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

_LEASE = "core.adapters.kubernetes.lease."
_LOWER = (
    "a lower-case method: the HTTP client upper-cases it on the wire, the API-call counter and error text "
    "name the same verb, and the fence lets our own Lease path through"
)
_RV = "the API server always sets metadata.resourceVersion: the default is never used"
_CAUGHT = "the text of an exception caught right there, never shown"
_UNHELD = (
    "the renewal attempt's clock hold: every await inside an attempt is a KubeApi request, which holds "
    "a VirtualClock itself, so time cannot jump during an attempt without it either"
)
_NO_CLOCK = (
    "the deadline without the Clock: a VirtualClock is held still during the attempt (its timer cannot "
    "fire), a ScaledClock is timed on the wall only, and the SystemClock is the wall: the wall backstop "
    "alone gives the same deadline"
)
_LEASE_DEAD = {
    7: "partition vs rpartition of host:pid: a hostname never contains ':'",
    15: "our own process and init exist: os.kill(pid, 0) finds them alive, the guard only saves the probe",
    17: "pid 1 (init) exists: os.kill(1, 0) finds it alive, the guard only saves the probe",
}
_LEASE_KEEPER = {
    "__init____mutmut_11": "acquire() sets ttl_s before anything reads it",
    "__init____mutmut_12": "acquire() sets ttl_s before anything reads it",
    "__init____mutmut_18": "_won() sets _rv before any request sends it",
    "__init____mutmut_23": "_try_acquire() sets _seen_change before acquire() reads it",
    "__init____mutmut_24": "_try_acquire() sets _seen_change before acquire() reads it",
    "_try_acquire__mutmut_2": "None is falsy like False, and _seen_change is only tested for truth",
    "_try_acquire__mutmut_10": _LOWER,
    "_try_acquire__mutmut_61": "the holder of a result to retry is never read: acquire() retries at once",
    "_try_acquire__mutmut_70": "acquire() returns an acquired result before it reads the retry flag",
    "_try_acquire__mutmut_182": "acquire() returns an acquired result before it reads the retry flag",
    "_try_acquire__mutmut_86": _RV,
    "_try_acquire__mutmut_88": _RV,
    "_try_acquire__mutmut_94": _RV,
    "renew__mutmut_13": 'after a 404, "" like None prints as "nobody" and differs from our holder',
    "renew__mutmut_22": _LOWER,
    "renew__mutmut_39": "_lose() has just set self.lost: the fallback text is never used",
    "renew__mutmut_40": "_lose() has just set self.lost: the fallback text is never used",
    "_patch_renew_time__mutmut_22": _LOWER,
    "release__mutmut_5": "holder and valid_until are set together and cleared together: and/or agree",
    "release__mutmut_51": _LOWER,
    "_renew_loop__mutmut_4": _UNHELD,
    "_renew_once__mutmut_2": "the loop, the only caller, stops on holder None itself",
    "_renew_once__mutmut_6": "valid_until is None only while holder is None, which returned above",
    "_renew_once__mutmut_8": "valid_until is None only while holder is None, which returned above",
    "_renew_once__mutmut_9": "remaining exactly 0: renew() starts with the same check, and sends nothing either",
    "_renew_once__mutmut_10": "check() does not raise before the deadline: checking at up to 1 s left changes nothing",
    **{f"_renew_once__mutmut_{n}": _CAUGHT for n in (11, 12, 13, 17, 21, 22, 23)},
    **{f"_renew_once__mutmut_{n}": _NO_CLOCK for n in (16, 20, 37, 40)},
}


_TRAFFIC = "core.adapters.kubernetes.traffic."
_FALSY = "None is falsy like False, and the flag is only tested for truth"
_SERVED = (
    "the API server always returns metadata and status (status is at least {}), and an HTTPRoute's "
    "spec is required: the default is never used"
)
_TRAFFIC_EQ = {
    "x_max_unavailable__mutmut_45": "round_up=None is falsy like False",
    "x_nginx_total__mutmut_18": 'a default of "XX100XX" fails int() and the except returns 100, as "100" does',
    "x_nginx_weight__mutmut_34": 'a default of "XX0XX" fails int() and the except returns 0, as weight "0" does',
    **{f"xǁTrafficStrategiesǁ_await__mutmut_{n}": _SERVED for n in (16, 18, 22, 24)},
    **{f"xǁTrafficStrategiesǁ_nginx_change__mutmut_{n}": _SERVED for n in (7, 9)},
    **{f"xǁTrafficStrategiesǁ_route_weight__mutmut_{n}": _SERVED for n in (5, 7)},
    **{f"xǁTrafficStrategiesǁ_set_gateway__mutmut_{n}": _SERVED for n in (35, 37)},
    "xǁTrafficStrategiesǁ_set_replicas__mutmut_105": _FALSY,
    "xǁTrafficStrategiesǁ_set_gateway__mutmut_1": (
        '`checked` starts as "" instead of None: it is only compared with a weight, an int '
        "(_route_weight), which equals neither"
    ),
    "xǁTrafficStrategiesǁ_set_gateway__mutmut_42": _FALSY,
    "xǁTrafficStrategiesǁ_set_gateway__mutmut_100": (
        '"" is falsy like None: the next attempt reads the route either way (`self._route or GET`, its only reader)'
    ),
    "xǁTrafficStrategiesǁ_before_weight__mutmut_2": (
        ">= vs >: equal weights reach the wait only as 0 and 0 (nginx with the canary annotation off; gateway "
        "calls it only when they differ), where percent > 0 is false anyway"
    ),
    "xǁTrafficStrategiesǁ_before_weight__mutmut_3": "percent > current >= 0 already means percent >= 1",
    **{
        f"xǁTrafficStrategiesǁ_before_weight__mutmut_{n}": "percent < current <= 100 already means percent < 100"
        for n in (17, 18)
    },
    **{
        f"xǁTrafficStrategiesǁ_before_weight__mutmut_{n}": (
            'any role but "stable" names the canary Deployment (_name, _path), and the canary replica count '
            "the read caches is used by the replicas strategy only, which never calls this"
        )
        for n in (6, 10, 11)
    },
}

_HALTED = (
    "_halt_body's cancel loop: run() calls it only before the body exists or after `await asyncio.wait"
    "({self._body})` has returned, so the body is None or done and the loop leaves at once"
)
_SELF_CANCEL = (
    "the flow's own request (the engine's triggers) cancelling the flow itself: every caller inside the flow "
    "raises _Stopped right after _request_stop returns, with no await between (no finally that awaits on the "
    "way out), and _drive ends a _Stopped flow and a cancelled one alike: the recorded stop's procedure. "
    "The flow is never None here: commands are refused while the phase is pending, before the flow exists"
)
_DRIVE_NO_OUTCOME = (
    "the outcome or reason of a flow ended by a stop: these branches are taken only with a stop recorded "
    "(a cancelled flow without one re-raises; _Stopped is raised only after one), and _drive then returns "
    "_finish_stop() without reading them; the initial reason is otherwise overwritten (completed) or set "
    "by its branch (blocked, error)"
)
_DRIVER_EQ = {
    **{f"_halt_body__mutmut_{n}": _HALTED for n in (1, 3, 6, 7, 8, 9, 10, 11)},
    "_main__mutmut_46": (
        '`_done("verify")` is true only with a progress, so the `if self.progress` the mutant forces true '
        "is true already"
    ),
    "_request_stop__mutmut_58": (
        '_paused_from "" instead of None on a rollback: every reader tests it for truth '
        "(effective_phase's `and`, resume's `or`), and \"\" is falsy like None"
    ),
    **{f"_request_stop__mutmut_{n}": _SELF_CANCEL for n in (73, 74, 75)},
    **{f"_drive__mutmut_{n}": _DRIVE_NO_OUTCOME for n in (14, 15, 22, 23)},
}

_FOLLOWING = (
    "the step a proceed moves to always exists: a proceed at the last (100 %) step is refused "
    "(promote early is its own command), so `index + 1 < len(steps)` is always true there"
)
_NO_TITLE_OR_FIRED = (
    'the "unknown" fallback: _auto_rollback runs only on a "fired" verdict, which analysis.judge gives '
    "only when some reading fired"
)
_WINDOW_EQ = {
    "_window_left_s__mutmut_2": (
        "no window: _window_left_s is called only by _end_window_for_person, inside _observe's loop, "
        "where a window is always open"
    ),
    **{
        f"_end_window_for_person__mutmut_{n}": (
            'the "someone" fallback: a proceed ends a window only when _proceed_requested is set '
            "(_window_cut_short), and a promote-early takes the other branch"
        )
        for n in (12, 13)
    },
    **{f"_end_window_for_person__mutmut_{n}": _FOLLOWING for n in (16, 19, 21)},
    "_end_window_for_person__mutmut_28": (
        '_proceed_step "" instead of None: it is compared with the step only while _proceed_requested '
        "is set, and proceed() sets both"
    ),
    "_end_window_for_person__mutmut_36": 'LogLine\'s source defaults to "engine"',
    "_data_is_back__mutmut_5": (
        '_paused_from "" instead of None: every reader tests it for truth (effective_phase\'s `and`, '
        "resume's `or`) and the next pause sets it anew"
    ),
    "_data_is_back__mutmut_6": (
        '_paused_by_engine_at "" instead of None: it is read only while paused (the blind pause, the '
        "samples' countdown, the persisted engine_paused_at), and every pause sets it anew (_enter_pause)"
    ),
    **{f"_auto_rollback__mutmut_{n}": _NO_TITLE_OR_FIRED for n in (4, 6, 7)},
    **{
        f"_auto_rollback__mutmut_{n}": (
            "readings=None (or left out): _request_stop falls back to the last analysis's readings, and the "
            "last analysis is the sample that fired (_analyse sets it just before)"
        )
        for n in (16, 23)
    },
    **{
        f"_auto_rollback__mutmut_{n}": (
            "no default title: every rule analysis.judge can fire (error_rate, p99_latency, health) has one "
            "in _RULE_TITLES"
        )
        for n in (30, 31, 32)
    },
    **{
        f"_read__mutmut_{n}": (
            "the sides' reason of a failed read: every reader takes the read's own reason first "
            "(analysis.judge, the staging soak rebuilds both sides from it), so it is never read"
        )
        for n in (3, 4)
    },
    **{
        f"_observe__mutmut_{n}": (
            "the baseline reference's refresh: _counts says an interval counts only for a healthy read, and a "
            "healthy read at 100 % or in verification already carries the reference as its baseline "
            "(_analyse; without one the old version's empty baseline is no data, never healthy), so "
            "refreshing it there, or on `healthy or`, sets the same value"
        )
        for n in (63, 64, 69, 70)
    },
    "_observe__mutmut_73": (
        "_last_metrics is None only without a metrics port, where no read is healthy, so the fallback to "
        "the old reference is never taken on a counted interval"
    ),
    "_observe__mutmut_80": "fresh_needed None instead of False: only tested for truth (the window's loop)",
    **{
        f"_analyse__mutmut_{n}": (
            "another word for thin passed to _blind_fields, which only tells no_data from the rest: no blind "
            "fields either way"
        )
        for n in (103, 104)
    },
    "_analyse__mutmut_1": (
        "paused=True as the default: the default is used only by the feature-flag read, which passes no "
        "window, and the elapsed time grows only with a window"
    ),
    **{
        f"_interval_counts__mutmut_{n}": (
            'the "no data" fallback of the blind rollback\'s reason: a no-data sample always has a reason '
            "(analysis.judge joins what is missing)"
        )
        for n in (46, 47)
    },
    "_observe__mutmut_7": (
        "promoted_early None instead of False: only tested for truth (the canary step's `not "
        "ended_by_person`, the judge's `and promoted_early`), and None is falsy like False"
    ),
    "_window_cut_short__mutmut_4": (
        "`or` for `and` before the proceed's step: _proceed_step equals the current canary step only while "
        "a proceed is pending; each consumer that leaves it set (the gates, the step's wait, a proceed "
        "that came as the window ended) leaves it at a step the rollout has left or at None before the "
        "canary, where step_index is None too but no canary window runs"
    ),
}

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
    **{
        f"core.analysis.x_judge__mutmut_{n}": (
            "the placeholder sample of a missing read: its reason is never read (the interval's reason is "
            '"metrics were not read")'
        )
        for n in (7, 8, 9, 13, 14, 15)
    },
    "core.analysis.x_judge__mutmut_248": "Judgement's no_data_reason defaults to None: dropping the None is the same",
    "core.analysis.x_judge__mutmut_267": "Judgement's no_data_reason defaults to None: dropping the None is the same",
    "core.analysis.x__significant_excess__mutmut_2": (
        "`and` for `or` between the error-rate None checks: every caller passes both error rates "
        "non-None (judge and soak_judge check them first, soak_regression returns before)"
    ),
    **{
        f"core.analysis.x__significant_excess__mutmut_{n}": (
            "the evidence text of unknown counts goes with True (significant), and callers read the "
            "evidence only when not significant"
        )
        for n in (8, 9)
    },
    # core.rollout (steps/canary.py, steps/rollback.py)
    "core.rollout.steps.canary.xǁCanaryStepǁ_set_weight__mutmut_8": (
        "`and` for `or` before re-announcing a weight: they differ only for an unapplied intent of another "
        "weight, and a resume always sets the weight its last intent announced (the same step or promotion)"
    ),
    **{
        f"core.rollout.steps.rollback.xǁRollbackProcedureǁ_rollback_procedure__mutmut_{n}": why
        for n, why in {
            28: (
                "the message of the CancelledError raised on a lost lease is never read: run() sees the "
                "lost lease and journals self._lease_lost"
            ),
            51: "ok=None for the alarm's ok=False: _communicate only reads `not ok`",
            72: (
                "stable_restored=False in the report of a rollback applied before a restart: read only when "
                "the report has no detail, and this one always has"
            ),
            **{
                n: (
                    "the fallback (actor, reason) for no recorded stop: the procedure runs only from a "
                    "recorded stop (_finish_stop asserts it; a resume restores it first)"
                )
                for n in (8, 9, 10, 104, 105, 106, 179, 180, 181)
            },
            185: (
                "pending=None in the outcome written before the lease is handed back: _mark('rollback.applied') "
                "just above has set the progress's pending to None (in memory even when its write is refused), "
                "and nothing sets it again before this write"
            ),
        }.items()
    },
    **{
        f"core.rollout.steps.rollback.xǁRollbackProcedureǁ_communicate__mutmut_{n}": (
            'the "level": "critical" of a not-restored message: rollback_message() makes every rollback '
            "message critical already, so the update changes nothing (a misspelt key only adds nothing)"
        )
        for n in (6, 7)
    },
    **{
        f"core.rollout.steps.rollback.xǁRollbackProcedureǁ_verify_restored__mutmut_{n}": (
            '_verify_restored\'s initial `last = "not checked"`: every pass of the loop sets `last` before '
            "the deadline check that reads it"
        )
        for n in (5, 6, 7)
    },
    **{
        f"core.rollout.steps.rollback.xǁRollbackProcedureǁ_abort_procedure__mutmut_{n}": (
            "the fallback (actor, reason) for no recorded stop: the abort runs only from a recorded stop "
            "(_finish_stop asserts it)"
        )
        for n in (20, 21, 29, 30, 31)
    },
    # core.rollout (driver.py)
    **{f"core.rollout.driver.xǁRolloutǁ{name}": why for name, why in _DRIVER_EQ.items()},
    # core.rollout (window.py)
    **{f"core.rollout.window.xǁWindowsǁ{name}": why for name, why in _WINDOW_EQ.items()},
    # core.rollout (context.py)
    **{
        f"core.rollout.context.x__public__mutmut_{n}": (
            'split("?") or split("?", 2) for split("?", 1): only the part before the first "?" is kept, '
            "whatever the number of splits"
        )
        for n in (4, 7)
    },
    "core.rollout.context.xǁRolloutContextǁ_set_phase__mutmut_1": (
        "the default reason of a phase change: every caller gives one"
    ),
    **{
        f"core.rollout.context.xǁRolloutContextǁ_mark__mutmut_{n}": (
            "the fallback for no persisted progress: the deploy's start (or the resume) persists it "
            "before any step can be marked done"
        )
        for n in (5, 8)
    },
    "core.rollout.context.xǁRolloutContextǁ_mark__mutmut_10": (
        "an empty result kept under its key: only verify's result is read, and it is always marked "
        "with one (green or the decision)"
    ),
    **{
        f"core.rollout.context.xǁRolloutContextǁ_persist__mutmut_{n}": (
            "the stop's key misspelt in the fields merged on each write: _request_stop writes the whole "
            "stop through its own changes, and every later write keeps that record (equal to _stop, a "
            "resume restores _stop from it)"
        )
        for n in (59, 60)
    },
    **{
        f"core.rollout.context.xǁRolloutContextǁ_open_window__mutmut_{n}": (
            "the 'engine' fallback for a person's pause with no pauser recorded: every pause records "
            "its actor (paused_by)"
        )
        for n in (82, 83)
    },
    # core.rollout (commands.py, gates.py)
    **{
        f"core.rollout.commands.xǁCommandsǁ_refuse__mutmut_{n}": (
            "_refuse's default identity: every caller (_refused, refuse, sign_off, override, decide) passes one"
        )
        for n in (1, 2)
    },
    **{
        f"core.rollout.commands.xǁCommandsǁpromote_early__mutmut_{n}": (
            "the fallback preview text: allowed('promote_early') has just passed with no await between, "
            "and it requires a window, so promote_early_preview() is never None here"
        )
        for n in (15, 16)
    },
    "core.rollout.gates.xǁGatesǁ_evaluate__mutmut_13": (
        "break for continue on a skipped gate's result: evaluate_gates returns only the gates in `only`, "
        "which leaves `skip` out, so that test never holds"
    ),
    "core.rollout.gates.xǁGatesǁ_unsatisfied__mutmut_13": (
        "_unevaluated(None) for a gate with no result: _gate_phase, the only caller, has recorded every "
        "gate of the group not skipped (evaluate_gates returns each one asked for) and none is removed"
    ),
    "core.rollout.gates.xǁGatesǁ_gate_phase__mutmut_7": "None for False: `announced` is only read as `not announced`",
    "core.rollout.gates.xǁGatesǁ_wait_for_proceed__mutmut_9": (
        "the idle nap's length: whatever ends the wait (a proceed, a rollback or abort) sets _wake and "
        "ends the nap at once; the length only paces idle wake-ups"
    ),
    # core.rollout (steps/staging.py, steps/migrations.py, steps/completion.py)
    "core.rollout.steps.staging.xǁStagingStepǁ_soak_reading__mutmut_1": (
        "`or` for `and` in the assert that both metrics ports exist: _soak, the only caller, has blocked "
        "already unless both are configured"
    ),
    "core.rollout.steps.staging.xǁStagingStepǁ_soak__mutmut_23": (
        "the soak's nap told phase None for STAGING: _nap_interval uses the phase only to ask whether a "
        "person cut a canary window short, which is False for any phase but CANARY"
    ),
    "core.rollout.steps.staging.xǁStagingStepǁ_soak__mutmut_109": (
        "fresh_needed=None for False: None is falsy, and the soak's loop only tests it for truth"
    ),
    **{
        name: (
            "needs_proceed=None for False: _gate_phase tests it for truth, and the _awaiting_proceed it "
            "copies is read only for truth (commands.allowed)"
        )
        for name in (
            "core.rollout.steps.migrations.xǁMigrationsStepǁ_migrations__mutmut_10",
            "core.rollout.steps.staging.xǁStagingStepǁ_staging__mutmut_48",
        )
    },
    "core.rollout.steps.completion.xǁCompletionStepǁ_completion_extras__mutmut_60": (
        "lstrip for rstrip on a flag step's message: it starts with \"flag\", and every step's detail is "
        "non-empty (observed ..., the endpoint's problem, the failed observation) and ends in no blank"
    ),
    "core.rollout.steps.completion.xǁCompletionStepǁ_completion_extras__mutmut_68": (
        "elapsed 1.0 for 0.0 in a flag step's read: the sample shows min(elapsed, duration) with duration 0, "
        "and no window is passed, so nothing adds to it"
    ),
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
    **{
        f"core.redact.x__refresh_env__mutmut_{n}": (
            "os.environ always has _data in CPython: the default and the None branch are never used"
        )
        for n in (6, 14)
    },
    "core.redact.x_redact_obj__mutmut_7": "ensure_ascii=None is falsy: the same as False",
    "core.redact.x__plain__mutmut_12": (
        "str() of an object other than a model only decides whether to walk, and the walk masks strings "
        "only, never inside such an object: the value comes back equal either way"
    ),
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
    # core.adapters.kubernetes.lease
    **{f"{_LEASE}x_holder_is_dead__mutmut_{n}": why for n, why in _LEASE_DEAD.items()},
    **{f"{_LEASE}xǁLeaseKeeperǁ{name}": why for name, why in _LEASE_KEEPER.items()},
    **{f"{_LEASE}x__hold__mutmut_{n}": _UNHELD for n in (1, 2, 6, 7, 8, 9, 11)},
    # core.adapters.kubernetes.traffic
    **{f"{_TRAFFIC}{name}": why for name, why in _TRAFFIC_EQ.items()},
    # core.adapters.journal
    **{
        f"core.adapters.journal.{name}": why
        for name, why in {
            "x_encode_line__mutmut_19": "ensure_ascii=None is falsy: the same as False",
            "x_encode_line__mutmut_38": '"UTF-8" and "utf-8" name the same codec',
            "x__read_tail__mutmut_26": "read(None) at the last byte reads that one byte, like read(1)",
            "x__read_tail__mutmut_27": "read(2) at the last byte reads that one byte, like read(1)",
            "x__read_tail__mutmut_59": "a read block of 65537 bytes instead of 65536: the same lines, one byte more",
            "x__line_start__mutmut_9": "a read block of 65537 bytes instead of 65536: the same offset, one byte more",
            "xǁFileJournalǁ_append_sync__mutmut_27": (
                "grew forced to the writer's old tail: the short read is only a shortcut; a file that shrank "
                "or ends torn reads no chained line past it (or the same lines), and the findings are the same "
                "(checked on both: the logs written are identical)"
            ),
            "xǁFileJournalǁ_append_sync__mutmut_32": (
                "size >= seen.size: seen is the tail whose size differed from size, so equal never happens"
            ),
            "x__audit__mutmut_11": (
                "anchor.seq > since.next_seq: an anchor exactly on the first line after the writer's own then "
                "makes it read the whole file, which gives the same findings (slower)"
            ),
            "x__lines_after__mutmut_9": '"" like None is not a dict: the short read is refused either way',
            "x__lines_after__mutmut_11": "UnicodeDecodeError is a ValueError: suppressing ValueError catches it",
            "x__lines_after__mutmut_13": "UnicodeDecodeError is a ValueError: suppressing ValueError catches it",
            **{
                f"x__lines_after__mutmut_{n}": (
                    "the short read's line numbers shifted by the same amount: the audit compares them "
                    "only with each other (which line comes after the anchored one) and reports by seq"
                )
                for n in (30, 31, 35, 36)
            },
            "xǁFileJournalǁ_append_sync__mutmut_36": (
                "_audit's torn_at only skips reading a file that is one torn fragment without an anchor: "
                "with None it reads it, finds no whole line and no anchor, and returns the same nothing"
            ),
            "xǁFileJournalǁ_write__mutmut_32": "durable=None is falsy: the same as False",
            "x__whole_lines__mutmut_12": '"" like None is not a dict: the fields read are {} either way',
            "x__whole_lines__mutmut_14": "UnicodeDecodeError is a ValueError: suppressing ValueError catches it",
            "x__whole_lines__mutmut_16": "UnicodeDecodeError is a ValueError: suppressing ValueError catches it",
            "x_verify_journal__mutmut_13": "first_bad_line defaults to None",
            **{
                f"x_verify_lines__mutmut_{n}": (
                    'a journal line without a message: "None" or "XXXX" starts with neither '
                    '"recovered" nor "tampered", like ""'
                )
                for n in (82, 84, 87)
            },
            "x_parse_lines__mutmut_37": "include_url adds a 'url' key to the error; its 'msg' is the same",
        }.items()
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
