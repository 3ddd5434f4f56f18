"""Django's PostgreSQL backend with the tenant context of tenants.rls applied to every cursor."""
