"""``retriever serve --ray``: the same FastAPI app (``router_retriever.service.app.create_app``: routes, OpenAPI, API keys,
limits) as a Ray Serve ingress behind Serve's HTTP proxy, ``[ray] replicas`` copies of it.

With ``[ray] split`` (the default) the engine's heavy parts are deployments of their own, each scaled by
its replica count (``router_retriever.ray.parts``): the router's base encoder (``router``), every other query
encoder (``encoder-<expert>``) and every index shard (``index-<j>-shard-<i>``). Each ingress replica opens the
data directory read-only (document store, BM25, pilot library) and builds its ``Retriever`` with
``ServeParts``, stand-ins that call those deployments' handles, so a search still goes router -> chosen
expert's encoder -> that expert's index shards -> fusion -> hits, the same engine code as in one process.
The split service is read-only: writes answer 405 (shard replicas hold the index as committed when they
started; rebuild with ``retriever build`` and redeploy). A part that died or is late answers 503 with
Retry-After within ``[ray] call_timeout_s``; Serve replaces a dead replica.

Without ``split`` every replica is the whole app over its own retriever: one replica may be the data
directory's writer; more than one serve it read-only (writes answer 405), as ``serve --read-only`` does.
Every replica opens the data directory itself (one machine, or a shared volume). Ray is imported on use
(the ``[ray]`` extra)."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

from fastapi import FastAPI

from router_retriever.config import RayConfig, Settings
from router_retriever.core.errors import ConfigError
from router_retriever.ray.cluster import import_ray
from router_retriever.ray.parts import ROUTER, EncoderPart, ServeParts, ShardPart, part_plan
from router_retriever.service.app import ServiceConfig, create_app

DEPLOYMENT = "retriever"  # the application, and its ingress deployment


class _IngressReplica:
    """One ingress replica: the service app (``service_app``, made by the subclass when the replica starts)."""

    service_app: FastAPI

    def __serve_build_asgi_app__(self) -> FastAPI:  # Serve's hook for an ingress whose app is made per replica
        return self.service_app

    def pid(self) -> int:
        """This replica's process (through a deployment handle: for tests that kill it)."""
        return os.getpid()


class RetrieverReplica(_IngressReplica):
    """One replica of the whole app: the service over its own retriever, built when the replica starts."""

    def __init__(self, settings: Settings, service: ServiceConfig, read_only: bool) -> None:
        self.service_app = create_app(settings, service, read_only=read_only)


class SplitIngressReplica(_IngressReplica):
    """One ingress replica of the split service: the app over a read-only retriever whose query encoders and
    indexes are the deployments' handles (encoders by identity, shards by document encoder, in shard order)."""

    def __init__(self, settings: Settings, service: ServiceConfig, encoders: dict[str, Any],
                 shards: dict[str, list[Any]]) -> None:
        parts = ServeParts(encoders, shards, settings.ray.call_timeout_s)
        self.service_app = create_app(settings, service, read_only=True, parts=parts)


def serve_application(settings: Settings, service: ServiceConfig, read_only: bool) -> Any:
    """The Serve application of the service. Ingress: ``[ray] replicas`` replicas of ``[ray] replica_cpus``
    CPUs each, each taking up to ``[limits] max_batch`` requests at once (Serve's default, 5, would starve the
    app's ``QueryBatcher``). Split (``[ray] split``): plus the part deployments, read-only. Whole app: read-only
    when ``read_only`` or when there is more than one replica (a data directory has one writer)."""
    serve = import_ray("ray.serve")
    check_fits(settings, float(import_ray().cluster_resources().get("CPU", 0)))
    ray = settings.ray
    if not ray.split:
        ingress = _ingress(serve, settings, RetrieverReplica)
        return ingress.bind(settings, service, read_only or ray.replicas > 1)
    plan = part_plan(settings)
    options = {"ray_actor_options": {"num_cpus": ray.part_cpus}}
    encoders = {spec.identity: serve.deployment(EncoderPart, name=name, num_replicas=_encoder_replicas(ray, name), **options)
                .bind(spec) for name, spec in plan.encoders.items()}
    shards: dict[str, list[Any]] = defaultdict(list)
    for name, place in plan.shards.items():
        shards[place.encoder].append(serve.deployment(ShardPart, name=name, num_replicas=ray.shard_replicas, **options)
                                     .bind(place, settings.index))
    return _ingress(serve, settings, SplitIngressReplica).bind(settings, service, encoders, dict(shards))


def reservations(settings: Settings) -> tuple[int, int]:
    """How many ingress replicas and (split) part replicas the application starts."""
    ray = settings.ray
    if not ray.split:
        return ray.replicas, 0
    plan = part_plan(settings)
    encoders = sum(_encoder_replicas(ray, name) for name in plan.encoders)
    return ray.replicas, encoders + len(plan.shards) * ray.shard_replicas


def check_fits(settings: Settings, cluster_cpus: float) -> None:
    """Refuse an application whose replicas reserve more CPUs than the cluster has: Serve would wait for them
    without end (an autoscaling cluster that would add nodes is told apart by nothing here)."""
    ingress, parts = reservations(settings)
    needed = ingress * settings.ray.replica_cpus + parts * settings.ray.part_cpus
    if needed > cluster_cpus:
        raise ConfigError(
            f"Ray Serve would wait forever: the application reserves {needed:g} CPUs ({ingress} ingress replica(s) x "
            f"[ray] replica_cpus {settings.ray.replica_cpus:g} + {parts} part replica(s) x part_cpus "
            f"{settings.ray.part_cpus:g}) and the Ray cluster has {cluster_cpus:g}; lower replica_cpus / part_cpus "
            "(a fraction such as 0.25 shares a core), run fewer replicas, or add nodes")


def _encoder_replicas(ray: RayConfig, name: str) -> int:
    """Replicas of the encoder deployment ``name``: the router's, or any other query encoder's."""
    return ray.router_replicas if name == ROUTER else ray.encoder_replicas


def _ingress(serve: Any, settings: Settings, replica: type) -> Any:
    return serve.deployment(serve.ingress()(replica), name=DEPLOYMENT, num_replicas=settings.ray.replicas,
                            ray_actor_options={"num_cpus": settings.ray.replica_cpus},
                            max_ongoing_requests=settings.limits.max_batch)  # the app's batcher coalesces them
