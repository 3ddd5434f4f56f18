"""`manage.py apikey create --tenant acme --name ci --scopes "runs:write traces:write"`.

Prints the new key once, on the last line, for scripts. `apikey revoke --tenant acme --name ci`
revokes every live key of that name; `create --replace` does so before creating.
"""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from tenants import rls, services
from tenants.audit import Actor
from tenants.errors import ServiceError
from tenants.models import ApiKey, Tenant


class Command(BaseCommand):
    help = "Create or revoke API keys from the command line."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        create = sub.add_parser("create", help="Create a key and print it once.")
        create.add_argument("--tenant", required=True, help="Tenant slug.")
        create.add_argument("--name", required=True)
        create.add_argument(
            "--scopes", required=True, help='Space- or comma-separated, e.g. "runs:write traces:write".'
        )
        create.add_argument("--expires-in-days", type=int, default=None)
        create.add_argument("--replace", action="store_true", help="Revoke live keys with the same name first.")
        revoke = sub.add_parser("revoke", help="Revoke every live key with this name.")
        revoke.add_argument("--tenant", required=True)
        revoke.add_argument("--name", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        with rls.tenant_context(tenant.pk):
            self._handle(tenant, options)

    def _handle(self, tenant: Tenant, options: dict[str, Any]) -> None:
        actor = Actor.system_actor("manage.py apikey")
        if options["verb"] == "revoke" or options.get("replace"):
            live = ApiKey.objects.for_tenant(tenant).filter(name=options["name"], revoked_at__isnull=True)
            for key in live:
                services.api_key_revoke(actor=actor, api_key=key)
                self.stderr.write(f"revoked {key}")
            if options["verb"] == "revoke":
                return
        expires_at = None
        if options["expires_in_days"]:
            expires_at = timezone.now() + timedelta(days=options["expires_in_days"])
        try:
            key, plaintext = services.api_key_create(
                actor=actor, tenant=tenant, name=options["name"], scopes=options["scopes"], expires_at=expires_at
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(f"Created key {key.name!r} for {tenant.slug} with scopes {' '.join(key.scopes)}.")
        self.stderr.write("It is shown once; store it now.")
        self.stdout.write(plaintext)
