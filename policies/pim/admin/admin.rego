# METADATA
# description: |
#   Authorization of Elevate's own administration API (assignments, role
#   settings, TOTP invites and resets: action mfa.manage at /). Demo rule:
#   a live Privileged Role Administrator elevation whose scope covers the
#   requested scope may do everything.
package pim.admin

import data.pim.lib

_admin_role := "privileged-role-administrator"

# METADATA
# description: |
#   True iff the principal has a live privileged-role-administrator elevation
#   whose scope covers input.scope ("/" when absent).
# entrypoint: true
default allow := false

allow if {
	some e in input.elevations
	_grants(e)
}

# METADATA
# description: The admin decision with a short reason; always defined.
# entrypoint: true
decision := {
	"allow": true,
	"reason": sprintf("granted by %s at %s", [_admin_role, e.scope]),
} if {
	e := _granting[0]
} else := {
	"allow": false,
	"reason": sprintf("%s needs an active %s elevation at %s", [_action, _admin_role, _scope]),
}

_scope := object.get(input, "scope", "/")

_action := object.get(input, "action", "")

_granting := [e |
	some e in input.elevations
	_grants(e)
]

_grants(e) if {
	e.role == _admin_role
	lib.elevation_live(e, input.now)
	lib.scope_covers(e.scope, _scope)
}
