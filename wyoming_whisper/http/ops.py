"""Operational routes: liveness, readiness, Prometheus metrics (open even with an API key)."""

from __future__ import annotations

from aiohttp import web

from .. import __version__
from ..metrics import CONTENT_TYPE
from .state import ENGINE

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    models = engine.model_status()
    for model in models:
        model["queue_depth"] = engine.admission.queue_depth(model["name"])
    states = {m["state"] for m in models}
    status = "loading" if "loading" in states else "degraded" if "error" in states else "ok"
    sel = engine.selection
    return web.json_response(
        {
            "status": status,
            "version": __version__,
            "backend": sel.backend,
            "device": sel.device_label,
            "compute_type": sel.compute_type,
            "default_model": engine.config.default_model,
            "models": models,
            "encoder_window": {
                "mode": engine.encoder_window,
                "fallbacks": engine.stats.encoder_fallbacks,
            },
            "hass_names": engine.assist.names.status() if engine.assist.names is not None else None,
            "assist_commands": {
                "enabled": engine.assist.enabled,
                "sentences": engine.assist.sentences.status(),
            },
            "streaming": {
                "early_decodes": engine.stats.early_decodes,
                "early_hits": engine.stats.early_hits,
                "partials": engine.stats.partials,
            },
        }
    )


@routes.get("/ready")
async def ready(request: web.Request) -> web.Response:
    """200 when this server should get new work, else 503 with the reason (load balancers).

    ``/health`` is the liveness answer (200 while the process works); this one drops to 503
    while the default model first loads, after SIGTERM and while its queue is full, so a
    balancer's health check takes the replica out before a client would see a 503.
    """
    engine = request.app[ENGINE]
    reason = engine.readiness()
    model = engine.config.default_model
    return web.json_response(
        {
            "ready": reason == "ready",
            "reason": reason,
            "model": model,
            "queue_depth": engine.admission.queue_depth(model),
            "capacity": engine.admission.capacity,
        },
        status=200 if reason == "ready" else 503,
        headers={"Cache-Control": "no-store"},
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; see docs/reliability.md for what each metric means."""
    body = request.app[ENGINE].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
