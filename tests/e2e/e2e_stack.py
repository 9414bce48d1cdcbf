"""The chain every end-to-end test runs: kmock's emulator, the listener, otel-gitjob's /metrics, a real Prometheus."""

from __future__ import annotations

from dataclasses import dataclass

from kube_emulator import Emulator
from prometheus_server import PrometheusServer

import otel_gitjob
from otel_gitjob.listener import ResourceListener

GAUGE_TTL = 4.0


@dataclass
class Stack:
    """The whole chain of one test."""

    emulator: Emulator
    instrumentation: otel_gitjob.Instrumentation
    listener: ResourceListener
    prometheus: PrometheusServer

    @property
    def gitjob(self) -> otel_gitjob.GitJobMetrics:
        return self.instrumentation.gitjob
