"""Console forms, by area (`console.forms.<area>`), and the one way a view submits them
(`console.forms.base`: submit, refuse, act, done). Forms check types; services decide."""

from console.forms.base import Submitted, act, done, refuse, submit
from console.forms.tenants import (
    AcceptInvitationForm,
    ApiKeyForm,
    AuditFilterForm,
    EmailLoginForm,
    InviteForm,
    JoinForm,
    RoleForm,
    TenantForm,
)

__all__ = [
    "AcceptInvitationForm",
    "ApiKeyForm",
    "AuditFilterForm",
    "EmailLoginForm",
    "InviteForm",
    "JoinForm",
    "RoleForm",
    "Submitted",
    "TenantForm",
    "act",
    "done",
    "refuse",
    "submit",
]
