"""The `smm` console command."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

import typer

from devstack.cli import dev_app
from shared.auth import ROLES, issue_token
from shared.settings import PlatformSettings
from smmctl.dlq import dlq_app

app = typer.Typer(no_args_is_help=True, help="Operate OpenSMM.")
token_app = typer.Typer(no_args_is_help=True, help="Bearer tokens for the services' APIs.")
app.add_typer(token_app, name="token")


def _auth_secret() -> str:
    settings = PlatformSettings()
    if settings.auth_secret is not None:
        return settings.auth_secret.get_secret_value()
    # Outside a configured environment, fall back to the local dev stack's secret.
    from devstack.state import load_secrets, state_dir

    if (state_dir() / "secrets.json").exists():
        return load_secrets().auth_secret
    raise typer.BadParameter("SMM_AUTH_SECRET is not set and no dev stack secrets were found")


@token_app.command("issue")
def token_issue(
    tenant: Annotated[str, typer.Option(help="Tenant (agency) id the token is scoped to.")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    subject: Annotated[str | None, typer.Option(help="Who the token is for.")] = None,
    ttl_hours: Annotated[float, typer.Option(min=0.01, max=24 * 366)] = 12.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Issue a signed bearer token for a tenant and role."""
    if role not in ROLES:
        raise typer.BadParameter(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    settings = PlatformSettings()
    token = issue_token(
        _auth_secret(),
        tenant_id=tenant,
        role=role,
        subject=subject,
        ttl=timedelta(hours=ttl_hours),
        issuer=settings.auth_issuer,
    )
    if as_json:
        typer.echo(json.dumps({"tenant": tenant, "role": role, "token": token}))
    else:
        typer.echo(token)


app.add_typer(dev_app, name="dev", help="Run Kafka, Postgres and the services locally.")
app.add_typer(dlq_app, name="dlq")


def main() -> None:
    app()
