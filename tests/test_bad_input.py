"""Bad input is dropped, logged once per kind (never the whole object), counted, and never raises."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from sdk_storage import stored_attribute_sets
from support import gitrepo, samples

NS, NAME = "fleet-local", "repo-a"
REPO = (NS, NAME)
LABELS = (("name", NAME), ("namespace", NS))
CREATED = "fleet_gitjobs_created_success_total"

# The export-correctness tests run healthy and with each seam forced degraded (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("degraded_seam")


@pytest.mark.parametrize(
    ("repo", "reason"),
    [
        (None, "bad_repo"),
        (("ns",), "bad_repo"),
        (("", "name"), "bad_repo"),
        ({"metadata": {"name": "only-a-name"}}, "bad_repo"),
        (("ns", 42), "bad_identity_value"),
        ({"metadata": {"namespace": ["ns"], "name": "x"}}, "bad_identity_value"),
        (object(), "bad_repo"),
    ],
)
def test_unusable_repo_is_dropped_counted_and_never_raises(gitjob, lifecycle, registry, repo, reason):
    gitjob.job_created(repo)
    gitjob.job_succeeded(repo, 1.0)
    with gitjob.time_commit_fetch(repo):
        pass

    assert lifecycle.drops.counts() == {reason: 3}
    got = samples(registry)
    assert got[("otel_gitjob_dropped_measurements_total", (("reason", reason),))] == 3
    assert not [key for key in got if key[0].startswith("fleet_")]


@pytest.mark.parametrize("duration", [math.nan, math.inf, -math.inf, -1.0, "3", None, True])
def test_bad_duration_is_dropped_and_counted(gitjob, lifecycle, registry, duration):
    gitjob.job_succeeded(("ns", "r"), duration)
    gitjob.commit_fetched(("ns", "r"), duration)

    assert lifecycle.drops.counts() == {"bad_duration": 2}
    assert not [key for key in samples(registry) if key[0].startswith("fleet_")]


def test_each_kind_of_drop_is_logged_once_per_interval(gitjob, clock, caplog):
    with caplog.at_level(logging.WARNING, logger="otel_gitjob"):
        for _ in range(100):
            gitjob.job_created(None)
            gitjob.job_succeeded(("ns", "r"), math.nan)
        assert len(caplog.records) == 2

        clock.advance(61)
        gitjob.job_created(None)

    assert len(caplog.records) == 3
    assert "99 more dropped" in caplog.records[-1].getMessage()


def test_zero_duration_is_a_valid_measurement(gitjob, registry):
    gitjob.job_succeeded(("ns", "r"), 0)
    assert samples(registry)[("fleet_gitjob_duration_seconds_count", (("name", "r"), ("namespace", "ns")))] == 1


def test_forget_of_garbage_returns_zero_and_logs(lifecycle, caplog):
    with caplog.at_level(logging.WARNING, logger="otel_gitjob"):
        assert lifecycle.forget(None) == 0
    assert "reason=bad_repo" in caplog.text
    assert lifecycle.drops.counts() == {"bad_repo": 1}


BAD_NAMES = ["lone\ud800surrogate", "new\nline", "tab\tname", "nul\x00", "x" * 254]


@pytest.mark.parametrize("bad", BAD_NAMES, ids=["surrogate", "newline", "tab", "nul", "254-chars"])
def test_a_bad_repo_name_is_dropped_counted_never_stored_and_the_scrape_works(
    gitjob, lifecycle, provider, registry, bad
):
    user_counter = provider.get_meter("user").create_counter("user_repo_events")
    gitjob.job_created((NS, bad))
    gitjob.job_succeeded(gitrepo(bad, "uid-1"), 3.0)
    user_counter.add(1, {"namespace": NS, "name": bad})  # the user's own instrument, same provider
    gitjob.job_created(REPO)
    text = generate_latest(registry).decode()  # raised UnicodeEncodeError for a lone surrogate
    got = samples(registry)
    assert got[(CREATED, LABELS)] == 1
    assert not [labels for _, labels in got if dict(labels).get("name") == bad]
    assert 'otel_gitjob_dropped_measurements_total{reason="bad_repo"}' in text
    assert lifecycle.drops.counts()["bad_repo"] >= 3
    assert not [a for a in stored_attribute_sets(provider) if a.get("name") == bad]
    assert lifecycle.forget((NS, bad)) == 0  # and forget/observe of it never raise
    lifecycle.observe((NS, bad))


def test_a_253_character_name_is_a_valid_kubernetes_name_and_recorded(gitjob, registry):
    name = "x" * 253
    gitjob.job_created((NS, name))
    assert samples(registry)[(CREATED, (("name", name), ("namespace", NS)))] == 1


class Boom(Exception):
    """What the hostile objects raise."""


class RaisingMetadata:
    @property
    def metadata(self) -> Any:
        raise Boom("metadata")


class RaisingFields:
    class _Meta:
        def __getattr__(self, name: str) -> Any:
            raise Boom(name)

    metadata = _Meta()

    @property
    def kind(self) -> Any:
        raise Boom("kind")


class RaisingMapping(Mapping):  # type: ignore[type-arg]
    def __getitem__(self, key: Any) -> Any:
        raise Boom("getitem")

    def get(self, key: Any, default: Any = None) -> Any:
        raise Boom("get")

    def __contains__(self, key: Any) -> bool:
        raise Boom("contains")

    def __iter__(self) -> Iterator[Any]:
        raise Boom("iter")

    def __len__(self) -> int:
        raise Boom("len")


class RaisingStr(str):
    def __str__(self) -> str:
        raise Boom("str")

    def isprintable(self) -> bool:
        raise Boom("isprintable")


class RaisingNumber(float):
    def __gt__(self, other: Any) -> bool:
        raise Boom("gt")

    __ge__ = __lt__ = __le__ = __gt__


class Unreprable:
    def __repr__(self) -> str:
        raise Boom("repr")

    def __eq__(self, other: object) -> bool:
        raise Boom("eq")

    __hash__ = None  # type: ignore[assignment]


HOSTILE = [
    RaisingMetadata(),
    RaisingFields(),
    RaisingMapping(),
    {"metadata": RaisingMapping()},
    {"object": RaisingMapping()},
    {"metadata": {"namespace": RaisingStr("ns"), "name": RaisingStr("n")}},
    (RaisingStr("ns"), RaisingStr("n")),
    RaisingNumber(1.0),
    SimpleNamespace(metadata=SimpleNamespace(namespace="ns", name=RaisingStr("n"), uid=RaisingNumber(2.0))),
]

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), math.nan, math.inf, -math.inf, -0.0, b"\xff\xfe", bytearray(b"x")]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
    st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), max_size=5),
    st.text(st.characters(max_codepoint=0x20), max_size=5),
    st.binary(max_size=10),
    st.sampled_from(HOSTILE),
    # Built, not sampled: hypothesis itself shows a strategy's sampled values with repr().
    st.builds(Unreprable),
    st.builds(lambda: {"metadata": Unreprable()}),
    st.builds(lambda: SimpleNamespace(metadata=SimpleNamespace(namespace="ns", name="n", uid=Unreprable()))),
)


def _as_body(metadata: Any) -> dict[str, Any]:
    return {"metadata": metadata}


def _as_model(namespace: Any, name: Any, uid: Any) -> Any:
    return SimpleNamespace(kind="GitRepo", metadata=SimpleNamespace(namespace=namespace, name=name, uid=uid))


anything = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=10) | st.sampled_from(["metadata", "object", "namespace", "name"]), children),
        st.builds(_as_body, st.fixed_dictionaries({"namespace": children, "name": children, "uid": children})),
        st.builds(lambda inner: {"type": "ADDED", "object": inner}, children),
        st.builds(_as_model, children, children, children),
    ),
    max_leaves=8,
)


def test_no_input_escapes_any_recording_method_forget_or_observe(gitjob, lifecycle, registry, provider):
    histogram = provider.get_meter("test").create_histogram("bound_histogram")
    gauge = provider.get_meter("test").create_gauge("bound_gauge")

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(repo=anything, duration=anything, kind=st.one_of(st.none(), st.just("GitRepo"), anything))
    def record_everything(repo: Any, duration: Any, kind: Any) -> None:
        gitjob.job_created(repo)
        gitjob.job_creation_failed(repo)
        gitjob.job_succeeded(repo, duration)
        gitjob.commit_fetched(repo, duration)
        gitjob.commit_fetch_failed(repo)
        gitjob.job_succeeded(REPO, duration)
        gitjob.commit_fetched(REPO, duration)
        with gitjob.time_commit_fetch(repo):
            pass
        with pytest.raises(Boom, match="the poll's own"):  # the block's own exception, and only it
            with gitjob.time_commit_fetch(repo):
                raise Boom("the poll's own")
        handle = gitjob.bind(repo)
        handle.job_succeeded(duration)
        handle.commit_fetched(duration)
        gitjob.bind(REPO).job_succeeded(duration)
        lifecycle.bind(histogram, repo).record(duration)
        lifecycle.bind(gauge, REPO).set(duration)
        lifecycle.observe(repo)
        lifecycle.observe(repo, kind=kind)
        assert isinstance(lifecycle.forget(repo), int)
        assert isinstance(lifecycle.forget(repo, kind=kind), int)

    record_everything()
    generate_latest(registry)  # and the scrape still works
    assert lifecycle.drops.counts().get("bad_repo", 0) > 0


SECRET = "ghp_S3cr3tT0kenDoNotLog"


@pytest.mark.parametrize(
    "bad_body",
    [
        {"metadata": {"namespace": 7, "name": "x"}, "spec": {"repo": "https://git:%s@github.com/o/r" % SECRET}},
        {"spec": {"repo": "https://git:%s@github.com/o/r" % SECRET}, "padding": "A" * 1_000_000},
        {"metadata": {"name": "no-namespace", "annotations": {"token": SECRET}}},
        SimpleNamespace(metadata=None, spec=SimpleNamespace(repo=SECRET)),
    ],
    ids=["int-namespace", "no-metadata-1MB", "no-namespace", "model"],
)
def test_a_dropped_body_is_never_logged(gitjob, lifecycle, caplog, bad_body):
    caplog.set_level(logging.DEBUG, logger="otel_gitjob")
    gitjob.job_created(bad_body)
    gitjob.job_succeeded(bad_body, 1.0)
    lifecycle.forget(bad_body)
    lifecycle.observe(bad_body)
    gitjob.job_succeeded(REPO, SECRET)
    assert caplog.records, "the drop was not logged at all"
    for record in caplog.records:
        line = record.getMessage() + (record.exc_text or "")
        assert SECRET not in line
        assert "AAAA" not in line
        assert len(line) < 400


def test_two_thousand_bad_forgets_log_at_most_a_couple_of_lines(lifecycle, caplog):
    caplog.set_level(logging.DEBUG, logger="otel_gitjob")
    garbage: list[Any] = [None, object(), {"x": 1}, ("ns",), {"metadata": {"name": "n"}}, 42, "ns/name"]
    for i in range(2_000):
        assert lifecycle.forget(garbage[i % len(garbage)]) == 0
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) <= 2, lines
    assert sum(len(line) for line in lines) < 1_000


def test_the_first_dropped_line_does_not_say_zero_more_and_the_summary_counts_exactly(gitjob, clock, caplog):
    caplog.set_level(logging.WARNING, logger="otel_gitjob")
    for _ in range(6):
        gitjob.job_created(None)
    clock.advance(61.0)
    gitjob.job_created(None)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert "dropped" in lines[0] and "more" not in lines[0]
    assert "5 more dropped" in lines[1]
