"""Console routes. Tenant pages live under t/<tenant_slug>/, which TenantMiddleware resolves."""

from django.urls import include, path

from console.views import agents, api_keys, audit, auth, budgets, dashboard, health, members, platform, runs
from console.views import catalog as catalog_pages

app_name = "console"

tenant_patterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("members/", members.members, name="members"),
    path("members/<uuid:pk>/role/", members.change_role, name="member_role"),
    path("members/<uuid:pk>/remove/", members.remove, name="member_remove"),
    path("invitations/<uuid:pk>/revoke/", members.revoke_invitation, name="invitation_revoke"),
    path("api-keys/", api_keys.api_keys, name="api_keys"),
    path("api-keys/<uuid:pk>/revoke/", api_keys.revoke, name="api_key_revoke"),
    path("audit/", audit.audit_log, name="audit"),
    path("agents/", agents.agents, name="agents"),
    path("agents/new/", agents.agent_new, name="agent_new"),
    path("agents/<uuid:pk>/", agents.agent, name="agent"),
    path("agents/<uuid:pk>/archive/", agents.agent_archive, name="agent_archive"),
    path("agents/<uuid:pk>/try/", agents.agent_try, name="agent_try"),
    path("tools/", agents.tools, name="tools"),
    path("tools/new/", agents.tool_new, name="tool_new"),
    path("tools/<uuid:pk>/", agents.tool, name="tool"),
    path("tools/<uuid:pk>/delete/", agents.tool_delete, name="tool_delete"),
    path("demo/", agents.demo, name="demo"),
    path("runs/", runs.runs, name="runs"),
    path("runs/<uuid:pk>/", runs.run, name="run"),
    path("runs/<uuid:pk>/cancel/", runs.run_cancel, name="run_cancel"),
    path("models/", catalog_pages.catalog, name="catalog"),
    path("models/new/", catalog_pages.model_create, name="model_create"),
    path("models/<uuid:pk>/", catalog_pages.model_edit, name="model_edit"),
    path("models/providers/new/", catalog_pages.provider_create, name="provider_create"),
    path("models/providers/<uuid:pk>/", catalog_pages.provider_edit, name="provider_edit"),
    path("pins/", catalog_pages.pins, name="pins"),
    path("pins/changes/", catalog_pages.pin_change_request, name="pin_change_request"),
    path("pins/changes/<uuid:pk>/", catalog_pages.pin_change, name="pin_change"),
    path("pins/changes/<uuid:pk>/decide/", catalog_pages.pin_change_decide, name="pin_change_decide"),
    path("pins/changes/<uuid:pk>/cancel/", catalog_pages.pin_change_cancel, name="pin_change_cancel"),
    path("budgets/", budgets.budgets, name="budgets"),
    path("budgets/new/", budgets.budget_new, name="budget_new"),
    path("budgets/ledger/", budgets.ledger, name="budget_ledger"),
    path("budgets/<uuid:pk>/", budgets.budget_edit, name="budget_edit"),
]

urlpatterns = [
    path("", auth.home, name="home"),
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("tenants/", auth.tenants, name="tenants"),
    path("invitations/<str:token>/", auth.accept_invitation, name="accept_invitation"),
    path("platform/tenants/", platform.tenants, name="platform_tenants"),
    path("platform/tenants/<uuid:pk>/status/", platform.set_status, name="platform_tenant_status"),
    path("healthz", health.healthz, name="healthz"),
    path("t/<slug:tenant_slug>/", include(tenant_patterns)),
]
