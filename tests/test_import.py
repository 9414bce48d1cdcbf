import otel_gitjob


def test_public_names_are_pinned():
    assert sorted(otel_gitjob.__all__) == sorted(
        [
            "GITJOB_INSTRUMENTS",
            "ConfigurationError",
            "GitJobMetrics",
            "InstrumentSpec",
            "Instrumentation",
            "Lifecycle",
            "LifecycleExporter",
            "LifecyclePrometheusReader",
            "RepoRef",
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
        "GitRepoListener",
        "KindSpec",
        "ListenerSettings",
        "ResourceListener",
        "kinds_from_crs_config",
        "load_configuration",
        "run_sidecar",
    ]
