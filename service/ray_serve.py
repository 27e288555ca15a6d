"""``retriever serve --ray``: the same FastAPI app (``service.app.create_app``: routes, OpenAPI, API keys,
limits) as a Ray Serve ingress, ``[ray] replicas`` copies behind Serve's HTTP proxy, each replica opening
the data directory itself (so it must see it: one machine, or a shared volume). One replica may be the
directory's writer; more than one serve it read-only (writes answer 405), as ``serve --read-only`` does.
A replica that dies is replaced by Serve. Ray is imported on use (the ``[ray]`` extra)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from retriever import Settings, import_ray
from service.app import ServiceConfig, create_app

DEPLOYMENT = "retriever"


class RetrieverReplica:
    """One Serve replica: the service app over its own retriever, built when the replica starts."""

    def __init__(self, settings: Settings, service: ServiceConfig, read_only: bool) -> None:
        self.service_app = create_app(settings, service, read_only=read_only)

    def __serve_build_asgi_app__(self) -> FastAPI:  # Serve's hook for an ingress whose app is made per replica
        return self.service_app


def serve_application(settings: Settings, service: ServiceConfig, read_only: bool) -> Any:
    """The Serve application of the service: ``[ray] replicas`` replicas of ``[ray] replica_cpus`` CPUs each,
    read-only when ``read_only`` or when there is more than one (a data directory has one writer), each
    taking up to ``[limits] max_batch`` requests at once (Serve's default, 5, would starve the app's
    ``QueryBatcher``)."""
    serve = import_ray("ray.serve")
    replicas = settings.ray.replicas
    ingress = serve.deployment(serve.ingress()(RetrieverReplica), name=DEPLOYMENT, num_replicas=replicas,
                               ray_actor_options={"num_cpus": settings.ray.replica_cpus},
                               max_ongoing_requests=settings.limits.max_batch)  # the app's batcher coalesces them
    return ingress.bind(settings, service, read_only or replicas > 1)
