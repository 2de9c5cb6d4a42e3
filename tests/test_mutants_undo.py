"""`kubectl rollout undo` as pure functions (core.adapters.kubernetes.undo): which revision a rollback
returns to and the exact patch it sends (issue 16; written against `make mutate`'s survivors).

Reference behaviour: kubectl's polymorphichelpers/rollback.go.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.adapters.kubernetes.undo import (
    HASH_LABEL,
    REVISION,
    STATE_ANNOTATION,
    equal_ignore_hash,
    owned_by,
    pick_revision,
    revision,
    strip_hash,
    undo_patch,
)
from core.ports import ClusterError


def _rs(rev: str | None, image: str = "app:1", name: str = "") -> dict[str, Any]:
    annotations = {} if rev is None else {REVISION: rev}
    return {
        "metadata": {"name": name or f"rs-{rev}", "annotations": annotations},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web", HASH_LABEL: f"h{rev}"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            }
        },
    }


def test_revision_reads_the_annotation_and_anything_else_is_none() -> None:
    assert revision(_rs("12")) == 12
    assert revision(_rs(None)) is None
    assert revision({}) is None
    assert revision({"metadata": {"annotations": None}}) is None
    assert revision(_rs("twelve")) is None


def test_owned_by_needs_the_deployments_uid_on_a_controller_reference() -> None:
    deployment = {"metadata": {"uid": "u-1"}}

    def rs(*refs: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"ownerReferences": list(refs)}}

    assert owned_by(rs({"uid": "u-2", "controller": True}, {"uid": "u-1", "controller": True}), deployment)
    assert not owned_by(rs({"uid": "u-1", "controller": False}), deployment)
    assert not owned_by(rs({"uid": "u-1"}), deployment)
    assert not owned_by(rs({"uid": "u-2", "controller": True}), deployment)
    assert not owned_by({"metadata": {}}, deployment)
    assert not owned_by({"metadata": {"ownerReferences": None}}, deployment)


@pytest.mark.parametrize(
    "order", [("1", "2", "3"), ("3", "2", "1"), ("2", "3", "1"), ("3", "1", "2"), ("1", "3", "2")]
)
def test_the_default_target_is_the_previous_revision_in_any_order(order: tuple[str, ...]) -> None:
    replicasets = [_rs(None, name="orphan")] + [_rs(r) for r in order]
    assert pick_revision(replicasets)["metadata"]["name"] == "rs-2"


@pytest.mark.parametrize("order", [("1", "2"), ("2", "1")])
def test_with_two_revisions_the_first_one_is_the_previous(order: tuple[str, ...]) -> None:
    assert pick_revision([_rs(r) for r in order])["metadata"]["name"] == "rs-1"


def test_a_named_revision_is_found_or_refused_with_kubectls_words() -> None:
    replicasets = [_rs("1"), _rs("2"), _rs("3")]
    assert pick_revision(replicasets, to_revision=1)["metadata"]["name"] == "rs-1"
    assert pick_revision(replicasets, to_revision=3)["metadata"]["name"] == "rs-3"
    with pytest.raises(ClusterError, match=r"^unable to find specified revision 7 in history$"):
        pick_revision(replicasets, to_revision=7)


def test_no_previous_revision_is_refused() -> None:
    for replicasets in ([], [_rs("4")], [_rs("4"), _rs(None)]):
        with pytest.raises(ClusterError, match=r"^no rollout history found for the deployment$"):
            pick_revision(replicasets)


def test_strip_hash_drops_only_the_hash_label_and_leaves_the_input_alone() -> None:
    template = _rs("5")["spec"]["template"]
    stripped = strip_hash(template)
    assert stripped["metadata"]["labels"] == {"app": "web"}
    assert template["metadata"]["labels"][HASH_LABEL] == "h5"  # a copy, not the caller's object
    assert stripped["spec"] == template["spec"]
    assert strip_hash({"spec": {}}) == {"metadata": {}, "spec": {}}
    assert strip_hash({"metadata": {"labels": {"app": "web"}}}) == {"metadata": {"labels": {"app": "web"}}}
    assert strip_hash({"metadata": {"labels": None}}) == {"metadata": {"labels": None}}


def test_templates_equal_but_for_the_hash_are_equal() -> None:
    a, b = _rs("1")["spec"]["template"], _rs("2")["spec"]["template"]
    assert equal_ignore_hash(a, b)
    assert not equal_ignore_hash(a, _rs("2", image="app:2")["spec"]["template"])


def test_the_patch_replaces_the_template_and_merges_annotations_like_kubectl() -> None:
    deployment = {
        "metadata": {
            "annotations": {
                REVISION: "3",
                "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                "team": "payments",  # the Deployment's own: replaced by the ReplicaSet's set
                STATE_ANNOTATION: '{"step": 2}',
            }
        }
    }
    rs = _rs("2", image="app:2")
    rs["metadata"]["annotations"].update(
        {
            "team": "checkout",
            "note": "v2",
            STATE_ANNOTATION: '{"step": 0}',
            "deprecated.deployment.rollback.to": "1",
        }
    )
    patch = undo_patch(deployment, rs, keep=frozenset({STATE_ANNOTATION}))
    assert patch == [
        {
            "op": "replace",
            "path": "/spec/template",
            "value": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "app:2"}]},
            },
        },
        {
            "op": "replace",
            "path": "/metadata/annotations",
            "value": {
                REVISION: "3",
                "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                STATE_ANNOTATION: '{"step": 2}',
                "team": "checkout",
                "note": "v2",
            },
        },
    ]
    # without `keep`, the state annotation is an ordinary one and comes from the ReplicaSet
    plain = undo_patch(deployment, rs)[1]["value"]
    assert plain[STATE_ANNOTATION] == '{"step": 0}' and plain[REVISION] == "3"


def test_the_patch_copes_with_no_annotations_on_either_side() -> None:
    deployment: dict[str, Any] = {"metadata": {"annotations": None}}
    rs = _rs("1")
    rs["metadata"]["annotations"] = None
    assert undo_patch(deployment, rs)[1] == {"op": "replace", "path": "/metadata/annotations", "value": {}}
