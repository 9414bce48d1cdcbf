import otel_gitjob


def test_public_names_are_pinned():
    assert sorted(otel_gitjob.__all__) == sorted(
        [
            "GITJOB_INSTRUMENTS",
            "BoundCounter",
            "BoundGauge",
            "BoundHistogram",
            "BoundUpDownCounter",
            "ConfigurationError",
            "GitJobHandle",
            "GitJobMetrics",
            "InstrumentSpec",
            "Instrumentation",
            "Lifecycle",
            "LifecycleExporter",
            "LifecyclePrometheusReader",
            "ObjectRef",
            "__version__",
            "setup",
        ]
    )
    for name in otel_gitjob.__all__:
        assert getattr(otel_gitjob, name) is not None


def test_version_is_a_string():
    from otel_gitjob.version import __version__

    assert isinstance(__version__, str) and __version__.count(".") == 2


def test_listener_public_names_are_pinned():
    import otel_gitjob.listener

    assert sorted(otel_gitjob.listener.__all__) == [
        "GaugeSpec",
        "KindSpec",
        "ListenerSettings",
        "ResourceListener",
        "kinds_from_crs_config",
        "load_configuration",
        "run_sidecar",
    ]


# What a user holds in mind: construction, the views, the controller's operations, shutdown, and what
# they may read back. Everything else is plumbing behind hooks_of() or the listener's Sink.
LIFECYCLE_SURFACE = {
    "bind",
    "declare_kind",
    "default_kind",
    "degraded",
    "drops",
    "forget",
    "forget_series",
    "identity_keys",
    "observe",
    "provider_for",  # GitJobMetrics and the listeners check a MeterProvider routes through the lifecycle
    "register_self_metrics",
    "retain",
    "self_metrics",
    "shutdown",
    "transient",
    "views",
}


def test_the_lifecycle_surface_is_pinned():
    deprecated = {"prometheus_reader", "wrap_exporter"}  # put on the class by _internal/app/deprecated.py
    assert {name for name in dir(otel_gitjob.Lifecycle) if not name.startswith("_")} == LIFECYCLE_SURFACE | deprecated


def test_deprecated_names_warn_and_still_work():
    import pytest
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
    from prometheus_client import CollectorRegistry

    with pytest.warns(DeprecationWarning, match="otel_gitjob.ObjectRef"):
        assert otel_gitjob.RepoRef is otel_gitjob.ObjectRef
    assert "RepoRef" not in otel_gitjob.__all__
    with otel_gitjob.Lifecycle() as lifecycle:
        with pytest.warns(DeprecationWarning, match="LifecyclePrometheusReader"):
            reader = lifecycle.prometheus_reader(CollectorRegistry())
        assert isinstance(reader, otel_gitjob.LifecyclePrometheusReader)
        with pytest.warns(DeprecationWarning, match="LifecycleExporter"):
            exporter = lifecycle.wrap_exporter(ConsoleMetricExporter())
        assert isinstance(exporter, otel_gitjob.LifecycleExporter)
        reader.shutdown()
    with pytest.raises(AttributeError):
        otel_gitjob.NoSuchName  # noqa: B018


def test_the_deprecated_gitrepo_listener_is_a_resource_listener_of_gitrepos():
    import pytest

    listener_module = pytest.importorskip("otel_gitjob.listener")
    from otel_gitjob.fleet import GITREPO

    with pytest.warns(DeprecationWarning, match="ResourceListener"):
        factory = listener_module.GitRepoListener
    with otel_gitjob.Lifecycle() as lifecycle:
        listener = factory(lifecycle, status_gauges=False, api=object())
        assert isinstance(listener, listener_module.ResourceListener) and listener.kind is GITREPO


def test_refused_configurations_raise_configuration_error():
    import dataclasses

    import pytest
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

    with pytest.raises(otel_gitjob.ConfigurationError, match="otel_gitjob.Lifecycle"):
        otel_gitjob.LifecyclePrometheusReader(object())  # type: ignore[arg-type]
    with pytest.raises(otel_gitjob.ConfigurationError, match="otel_gitjob.Lifecycle"):
        otel_gitjob.LifecycleExporter(object(), ConsoleMetricExporter())  # type: ignore[arg-type]
    listener = pytest.importorskip("otel_gitjob.listener")
    from otel_gitjob.fleet import GITREPO

    with pytest.raises(otel_gitjob.ConfigurationError, match="KindSpec.plural"):
        dataclasses.replace(GITREPO, plural="")
    with otel_gitjob.Lifecycle() as lifecycle:
        with pytest.raises(otel_gitjob.ConfigurationError, match="must be a KindSpec"):
            listener.ResourceListener(lifecycle, "gitrepos", api=object())  # type: ignore[arg-type]
