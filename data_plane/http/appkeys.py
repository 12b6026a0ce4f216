"""Typed keys of the state one data-plane app shares between handlers and background tasks."""

from __future__ import annotations

import random
from collections.abc import Mapping

from aiohttp import web

from data_plane.limits.admission import Admitter
from data_plane.limits.client import LeaseSource
from data_plane.metrics import Metrics
from data_plane.settings import Settings
from data_plane.snapshots.client import ConfigClient
from data_plane.snapshots.store import SnapshotStore
from data_plane.supervisor import Supervisor
from data_plane.upstream.providers.base import Provider
from data_plane.usage.reporter import UsageClient, UsageReporter
from shared.pb import control_pb2

SETTINGS = web.AppKey("settings", Settings)
ADMITTER = web.AppKey("admitter", Admitter)
NODE = web.AppKey("node", control_pb2.Node)
METRICS = web.AppKey("metrics", Metrics)
STORE = web.AppKey("store", SnapshotStore)
RANDOM = web.AppKey("random", random.Random)
PROVIDERS = web.AppKey[Mapping[int, Provider]]("providers")
USAGE = web.AppKey("usage", UsageReporter)
SUPERVISOR = web.AppKey("supervisor", Supervisor)
# Set only when the app was given an in-memory (or other) usage client instead of gRPC.
USAGE_CLIENT = web.AppKey[UsageClient]("usage_client")
# Set only when the app was given a LeaseService client other than gRPC (tests).
LEASE_SOURCE = web.AppKey[LeaseSource]("lease_source")
# Set only when a control plane is configured.
CONFIG_CLIENT = web.AppKey("config_client", ConfigClient)

REQUEST_ID = web.RequestKey("request_id", str)
