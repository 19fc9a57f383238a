"""`python -m devstack.sandbox`: serve the sandbox network, with traffic from the start if asked."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from devstack.sandbox.app import SandboxConfig, create_app
from devstack.sandbox.traffic import TrafficProfile

cli = typer.Typer(add_completion=False)


@cli.command()
def main(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8010,
    rate_limit: Annotated[
        int, typer.Option(min=0, help="Requests per token per 5 minutes; 0 = unlimited.")
    ] = 300,
    max_statuses: Annotated[
        int, typer.Option(min=1000, help="Statuses kept in memory; the oldest go first.")
    ] = 500_000,
    admin_token: Annotated[
        str | None,
        typer.Option(envvar="SMM_SANDBOX_ADMIN_TOKEN", help="Require it on /sandbox/* calls."),
    ] = None,
    public_url: Annotated[
        str | None, typer.Option(help="Base URL in links (default: the request's own).")
    ] = None,
    traffic: Annotated[
        bool,
        typer.Option("--traffic/--no-traffic", help="Run the default traffic profile from start."),
    ] = False,
    # The default traffic profile (what POST /sandbox/traffic fills in, and what --traffic runs).
    traffic_rate: Annotated[float, typer.Option(min=0.001, help="Statuses per second.")] = 2.0,
    brand: Annotated[list[str] | None, typer.Option(help="A brand to talk about (repeat).")] = None,
    competitor: Annotated[list[str] | None, typer.Option(help="A competitor (repeat).")] = None,
    language: Annotated[list[str] | None, typer.Option(help="en and/or ru (repeat).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the traffic generator.")] = 0,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve the sandbox network (Mastodon API subset) until SIGTERM or Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    defaults = TrafficProfile()
    try:
        profile = TrafficProfile.model_validate(
            {
                "rate_per_s": traffic_rate,
                "brands": brand or defaults.brands,
                "competitors": competitor or defaults.competitors,
                "languages": language or defaults.languages,
                "seed": seed,
            }
        )
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from None
    config = SandboxConfig(
        rate_limit=rate_limit,
        max_statuses=max_statuses,
        admin_token=admin_token,
        public_url=public_url.rstrip("/") if public_url else None,
        traffic_defaults=profile,
    )
    uvicorn.run(
        create_app(config, start_traffic=traffic),
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
    )


if __name__ == "__main__":
    cli()
