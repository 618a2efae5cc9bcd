# METADATA
# description: |
#   Authorization of an action on the hot path (gateways, Data API): does one
#   of the subject's live elevations grant the action at the scope?
package pim.authz

import data.pim.lib

# METADATA
# description: |
#   True iff an elevation of the subject is live at input.now, its role has a
#   permission matching input.action and its scope covers input.scope.
# entrypoint: true
default allow := false

allow if {
	some e in input.elevations
	_grants(e)
}

# METADATA
# description: |
#   Always defined: allow, the first granting elevation in input order (or
#   null) and a short reason.
# entrypoint: true
decision := {
	"allow": true,
	"elevation": object.filter(e, ["id", "role", "scope", "expires_at"]),
	"reason": sprintf("granted by %s at %s", [e.role, e.scope]),
} if {
	e := _granting[0]
} else := {
	"allow": false,
	"elevation": null,
	"reason": sprintf("invalid scope %s", [lib.quote(_scope)]),
} if {
	not lib.scope_valid(_scope)
} else := {
	"allow": false,
	"elevation": null,
	"reason": "no action given",
} if {
	lib.text(_action) == ""
} else := {
	"allow": false,
	"elevation": null,
	"reason": sprintf("no active elevation grants %s at %s", [_action, _scope]),
}

_scope := object.get(input, "scope", "/")

_action := object.get(input, "action", "")

_granting := [e |
	some e in input.elevations
	_grants(e)
]

_grants(e) if {
	lib.elevation_live(e, input.now)
	lib.scope_covers(e.scope, _scope)
	lib.role_permits(data.pim.roles[e.role], input.action)
}
